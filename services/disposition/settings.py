from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from outbound_core.settings import ServiceSettings


class DispositionSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="DISPOSITION_", extra="ignore", populate_by_name=True
    )
    service_name: str = "disposition"
    http_port: int = 8084
    database: str = "outbound_disposition"

    custom_labels: dict[str, dict[str, Literal["terminal", "retryable"]]] = Field(
        default_factory=dict,
        description='Custom disposition labels per workspace id ("*": every workspace), each '
        'terminal or retryable (JSON, e.g. {"*": {"appointment_booked": "terminal"}}).',
    )
    breaker_window: int = Field(
        40, ge=1, description="Circuit breaker: how many recent attempts of a campaign count."
    )
    breaker_min_attempts: int = Field(
        20, ge=1, description="Circuit breaker: attempts needed in the window before it may trip."
    )
    breaker_failure_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Circuit breaker: share of failed attempts in the window that pauses the "
        "campaign (reason circuit_breaker).",
    )
    breaker_cooldown_seconds: float = Field(
        300.0,
        ge=0,
        description="Circuit breaker: a paused campaign resumes by itself after this many "
        "(virtual) seconds, doubled after each consecutive trip; 0: only a human resumes it.",
    )
    breaker_max_cooldown_seconds: float = Field(
        3600.0, gt=0, description="Circuit breaker: the longest cool-down (virtual seconds)."
    )
    breaker_probe_attempts: int = Field(
        10,
        ge=1,
        description="Circuit breaker: after a resume, this many attempts decide: failures at "
        "the threshold pause the campaign again, otherwise the breaker closes.",
    )
    breaker_check_seconds: float = Field(
        1.0, gt=0, description="Circuit breaker: how often cool-downs are checked (real seconds)."
    )

    @model_validator(mode="after")
    def _window_holds_min(self) -> DispositionSettings:
        if self.breaker_min_attempts > self.breaker_window:
            raise ValueError("breaker_min_attempts cannot exceed breaker_window")
        return self

    def labels_for(self, workspace_id: str) -> dict[str, Literal["terminal", "retryable"]]:
        return {**self.custom_labels.get("*", {}), **self.custom_labels.get(workspace_id, {})}


@lru_cache
def get_settings() -> DispositionSettings:
    return DispositionSettings()
