"""The laptop setup (docker-compose.yml) and the image (Dockerfile) cannot be built here (no
Docker engine), so their contract with the code is checked instead: every service the compose
file starts exists and reads every variable it is given, and the image's install step is
rehearsed outside Docker (tests/integration/test_image_install.py)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from outbound_core.configdoc import SERVICES, env_names

ROOT = Path(__file__).resolve().parents[2]
INFRA = {"kafka", "mongo"}


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def _app_services() -> dict[str, dict[str, Any]]:
    return {k: v for k, v in _compose()["services"].items() if k not in INFRA}


def test_compose_starts_every_service_once() -> None:
    assert sorted(_app_services()) == sorted(name for name, _, _ in SERVICES)


@pytest.mark.parametrize("name", [name for name, _, _ in SERVICES])
def test_compose_service_runs_its_module_with_known_settings(name: str) -> None:
    svc = _app_services()[name]
    command = svc["command"]
    assert command[:2] == ["python", "-m"], command
    module = command[2]
    assert module == name.replace("-", "_")
    assert importlib.util.find_spec(f"{module}.__main__") is not None, f"{module} has no __main__"
    unknown = set(svc["environment"]) - env_names(name)
    assert not unknown, f"{name} is given variables it never reads: {sorted(unknown)}"


def test_compose_ports_match_the_settings() -> None:
    services = _app_services()
    for name, svc in services.items():
        port_var = f"{name.replace('-', '_').upper()}_HTTP_PORT"
        port = svc["environment"][port_var]
        for mapping in svc.get("ports", []):
            assert mapping.endswith(f":{port}"), (name, mapping, port)
    webhook_url = services["campaign-api"]["environment"]["CAMPAIGN_API_WEBHOOK_SERVICE_URL"]
    assert webhook_url.endswith(f":{services['webhook']['environment']['WEBHOOK_HTTP_PORT']}")


def test_compose_waits_for_healthy_infrastructure() -> None:
    compose = _compose()
    for name in INFRA:
        assert "healthcheck" in compose["services"][name], name
    for name, svc in _app_services().items():
        assert set(svc["depends_on"]) == INFRA, name
        assert all(v["condition"] == "service_healthy" for v in svc["depends_on"].values())


def test_image_runs_as_non_root_with_the_pinned_uv() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    makefile = (ROOT / "Makefile").read_text()
    uv_make = re.search(r"^UV_VERSION := (\S+)", makefile, re.M)
    assert uv_make is not None
    assert f'"uv=={uv_make.group(1)}"' in dockerfile
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    user = re.search(r"^USER (\S+)", final_stage, re.M)
    assert user is not None and user.group(1) not in ("root", "0")
    assert "slim" in final_stage.splitlines()[0]
