from __future__ import annotations

from functools import lru_cache

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from outbound_core.settings import ServiceSettings


class ApiSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="CAMPAIGN_API_", extra="ignore", populate_by_name=True
    )
    service_name: str = "campaign-api"
    http_port: int = 8080
    database: str = "outbound_campaign_api"
    bootstrap_api_key: str | None = Field(
        None,
        validation_alias=AliasChoices("OUTBOUND_BOOTSTRAP_API_KEY"),
        description="Seed a development org, workspace and this API key at start-up.",
    )
    webhook_service_url: str = Field(
        "http://127.0.0.1:8085", description="Internal URL of the webhook service."
    )
    disposition_service_url: str = Field(
        "http://127.0.0.1:8084", description="Internal URL of the disposition service."
    )
    max_contacts: int = Field(10_000, description="Most contacts per campaign.")
    contacts_per_event: int = Field(
        2000, description="Most contacts per ContactsAdded event (also capped at ~400 kB)."
    )
    scheduler_seconds: float = Field(0.2, description="Real seconds between schedule checks.")
    completion_grace_seconds: float = Field(
        30.0,
        description=(
            "Longest real wait, once the planner reports a campaign drained, for its counters to"
            " show every disposition before the campaign is completed anyway."
        ),
    )


@lru_cache
def get_settings() -> ApiSettings:
    return ApiSettings()
