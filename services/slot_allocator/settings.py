from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from outbound_core.settings import ServiceSettings


class AllocatorSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="SLOT_ALLOCATOR_", extra="ignore", populate_by_name=True
    )
    service_name: str = "slot-allocator"
    http_port: int = 8082
    database: str = "outbound_slot_allocator"
    default_org_slots: int = Field(20, ge=1, description="Slots of an org with no slot settings.")
    max_call_seconds: float = Field(3600, description="Longest call (clock seconds).")
    lease_grace_seconds: float = Field(300, description="Grace after the longest call.")
    lease_min_real_seconds: float = Field(
        30.0,
        description="A lease never expires sooner than this in real seconds, however fast "
        "the simulated clock runs (processing time is real).",
    )
    expiry_check_seconds: float = Field(0.5, description="Real seconds between expiry checks.")
    send_concurrency: int = Field(
        32,
        ge=1,
        description="Grants whose lease write and TaskDispatched are in flight at once "
        "(the decisions themselves stay one at a time, in memory).",
    )


@lru_cache
def get_settings() -> AllocatorSettings:
    return AllocatorSettings()
