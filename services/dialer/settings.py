from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from outbound_core.settings import ServiceSettings

# Roughly what an outbound campaign to a warm list looks like; tests script outcomes instead.
DEFAULT_SIM_WEIGHTS: dict[str, float] = {
    "interested": 0.12,
    "not_interested": 0.18,
    "callback": 0.06,
    "voicemail": 0.12,
    "wrong_number": 0.03,
    "no_answer": 0.22,
    "busy": 0.07,
    "failed": 0.03,
    "opt_out": 0.03,
    "escalated": 0.02,
    "completed": 0.08,
    "short": 0.04,
}


class DialerSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DIALER_", extra="ignore", populate_by_name=True)
    service_name: str = "dialer"
    http_port: int = 8083
    database: str = "outbound_dialer"

    provider: Literal["sim"] = Field("sim", description="Voice provider that places the calls.")
    guard_calling_window: bool = Field(
        True, description="Refuse (abort) a dispatch that arrives outside the calling window."
    )
    sim_database: str = Field(
        "outbound_simulator", description="Database of the simulated phone network."
    )
    sim_outcome_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_SIM_WEIGHTS),
        description="Outcome distribution when a contact has no sim_outcomes script (JSON).",
    )
    sim_ring_seconds_min: float = Field(20.0, ge=0, description="Virtual ring time, lower bound.")
    sim_ring_seconds_max: float = Field(30.0, ge=0, description="Virtual ring time, upper bound.")
    sim_cost_per_minute: float = Field(0.09, ge=0, description="Simulated price per minute.")
    sim_tick_seconds: float = Field(
        0.02, gt=0, description="Real seconds between checks for simulated calls that ended."
    )
    sim_rescan_seconds: float = Field(
        5.0,
        gt=0,
        description="Real seconds between rescans of the simulator database (calls placed by "
        "another dialer instance that died).",
    )

    @field_validator("sim_outcome_weights")
    @classmethod
    def _weights_positive(cls, value: dict[str, float]) -> dict[str, float]:
        if not value or sum(value.values()) <= 0 or any(w < 0 for w in value.values()):
            raise ValueError("sim_outcome_weights needs non-negative weights with a positive sum")
        return value


@lru_cache
def get_settings() -> DialerSettings:
    return DialerSettings()
