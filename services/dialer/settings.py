from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator
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

    provider: Literal["sim", "http"] = Field(
        "sim", description="Voice provider that places the calls: sim or http (a voice gateway)."
    )
    http_gateway_url: str | None = Field(
        None, description="http provider: URL the dialer POSTs each call to."
    )
    http_gateway_token: str | None = Field(
        None, description="http provider: optional Bearer token sent to the gateway."
    )
    http_callback_url: str | None = Field(
        None,
        description="http provider: public URL of this dialer's /v1/provider/callbacks "
        "(default: http://<host>:<port>/v1/provider/callbacks).",
    )
    http_callback_secret: str | None = Field(
        None,
        description="http provider: Standard Webhooks secret (whsec_…) the gateway signs its "
        "callbacks with.",
    )
    http_timeout_seconds: float = Field(
        10.0, gt=0, description="http provider: real seconds to wait for the gateway's answer."
    )
    max_call_seconds: int = Field(
        1800, ge=1, description="Longest call the provider is asked to allow."
    )
    guard_calling_window: bool = Field(
        True, description="Refuse (abort) a dispatch that arrives outside the calling window."
    )
    campaign_catch_up_seconds: float = Field(
        5.0,
        ge=0,
        description=(
            "Longest real wait for the dialer's view of a campaign to show the start that led"
            " to a dispatch (the view comes from campaigns.v1 and may trail the dispatch)."
        ),
    )
    lease_min_real_seconds: float = Field(
        30.0,
        ge=0,
        description="A lease is trusted for at least this many real seconds after it was "
        "granted, however fast the simulated clock runs (match SLOT_ALLOCATOR_LEASE_MIN_REAL_"
        "SECONDS): a loaded dialer must not refuse leases the allocator still holds.",
    )
    lease_renew_fraction: float = Field(
        1 / 3,
        gt=0,
        lt=1,
        description="A call's lease is renewed each time this fraction of the lease's TTL "
        "has passed (virtual time) while the call is being placed or is live.",
    )
    lease_renew_check_seconds: float = Field(
        1.0, gt=0, description="Real seconds between looks for leases due for renewal."
    )
    lease_renew_grace_seconds: float = Field(
        300.0,
        ge=0,
        description="A live call's lease is renewed until max_call_seconds plus this (virtual "
        "seconds) after it was dialled; a call whose end never comes then loses its lease.",
    )
    dispatch_concurrency: int = Field(
        32,
        ge=1,
        le=1000,
        description="Dispatches worked on at once (guards, call record, provider request); "
        "1 handles them one by one.",
    )
    dialing_sweep_seconds: float = Field(
        15.0,
        gt=0,
        description="Real seconds between sweeps that judge again (the last-moment guard) "
        "and re-ask the provider for calls recorded but never confirmed placed (a crash in "
        "between); also their minimum age.",
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

    @model_validator(mode="after")
    def _http_needs_gateway(self) -> DialerSettings:
        if self.provider == "http":
            if not self.http_gateway_url or not self.http_callback_secret:
                raise ValueError(
                    "the http provider needs http_gateway_url and http_callback_secret"
                )
            weak = self.http_callback_secret.removeprefix("whsec_") in ("", "changeme", "secret")
            if weak and self.environment != "development":
                raise ValueError("http_callback_secret is a placeholder")
        return self

    def callback_url(self) -> str:
        return self.http_callback_url or (
            f"http://{self.http_host}:{self.http_port}/v1/provider/callbacks"
        )


@lru_cache
def get_settings() -> DialerSettings:
    return DialerSettings()
