from __future__ import annotations

from functools import lru_cache

from pydantic_settings import SettingsConfigDict

from outbound_core.settings import ServiceSettings


class DispositionSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="DISPOSITION_", extra="ignore", populate_by_name=True
    )
    service_name: str = "disposition"
    http_port: int = 8084
    database: str = "outbound_disposition"


@lru_cache
def get_settings() -> DispositionSettings:
    return DispositionSettings()
