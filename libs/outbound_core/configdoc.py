"""Render the configuration reference (every setting, its environment variable and default)
from the settings classes themselves, so the docs cannot drift from the code."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from outbound_core.settings import ServiceSettings

SERVICES = (
    ("campaign-api", "campaign_api.settings", "ApiSettings"),
    ("task-planner", "task_planner.settings", "PlannerSettings"),
    ("slot-allocator", "slot_allocator.settings", "AllocatorSettings"),
    ("dialer", "dialer.settings", "DialerSettings"),
    ("disposition", "disposition.settings", "DispositionSettings"),
    ("webhook", "webhook.settings", "WebhookSettings"),
)


def _env_name(name: str, field: FieldInfo, prefix: str) -> str:
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return str(alias.choices[0])
    if isinstance(alias, str):
        return alias
    return f"{prefix}{name}".upper()


FALLBACK = {
    "http_port": "HTTP port: /healthz, /readyz, /metrics (and the API, for campaign-api).",
    "database": "This service's own MongoDB database (no other service opens it).",
    "environment": "development, test or production (production refuses a fast clock).",
    "log_level": "Log level of the service.",
    "http_host": "Address the HTTP server binds (0.0.0.0 in containers).",
}


def _row(name: str, env: str, field: FieldInfo) -> str:
    default = field.get_default(call_default_factory=True)
    shown = "—" if default is None else f"`{default}`"
    desc = (field.description or FALLBACK.get(name, "")).replace("|", "\\|")
    return f"| `{env}` | {shown} | {desc} |"


def render() -> str:
    lines = ["### Shared by every service", "", "| variable | default | meaning |", "|---|---|---|"]
    common = set(ServiceSettings.model_fields)
    for name, field in ServiceSettings.model_fields.items():
        if name in ("service_name", "http_port", "database"):
            continue
        lines.append(_row(name, _env_name(name, field, ""), field))
    for service, module, cls_name in SERVICES:
        cls: type[ServiceSettings] = getattr(importlib.import_module(module), cls_name)
        prefix = str(cls.model_config.get("env_prefix", ""))
        lines += ["", f"### {service}", "", "| variable | default | meaning |", "|---|---|---|"]
        for name, field in cls.model_fields.items():
            if name in common and name not in ("http_port", "database"):
                continue
            lines.append(_row(name, _env_name(name, field, prefix), field))
    return "\n".join(lines) + "\n"


def env_names(service: str) -> set[str]:
    """Every environment variable ``service`` (e.g. ``"dialer"``) reads: the shared ones and
    its own."""
    names = {_env_name(n, f, "") for n, f in ServiceSettings.model_fields.items()}
    for name, module, cls_name in SERVICES:
        if name == service:
            cls: type[ServiceSettings] = getattr(importlib.import_module(module), cls_name)
            prefix = str(cls.model_config.get("env_prefix", ""))
            return names | {_env_name(n, f, prefix) for n, f in cls.model_fields.items()}
    raise KeyError(f"no service {service!r}; known: {[s for s, _, _ in SERVICES]}")


START, END = "<!-- config:start -->", "<!-- config:end -->"


def inject(document: str) -> str:
    """Replace the text between the config markers of ``document`` with the reference."""
    head, _, rest = document.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{render()}{END}{tail}"


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--write":
        path = Path(sys.argv[2])
        path.write_text(inject(path.read_text()))
    else:
        sys.stdout.write(render())


if __name__ == "__main__":
    main()
