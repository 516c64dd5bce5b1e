from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from outbound_core.settings import ServiceSettings


class PlannerSettings(ServiceSettings):
    model_config = SettingsConfigDict(
        env_prefix="TASK_PLANNER_", extra="ignore", populate_by_name=True
    )
    service_name: str = "task-planner"
    http_port: int = 8081
    database: str = "outbound_task_planner"
    tick_seconds: float = Field(0.05, description="Real seconds between due-task checks.")
    tick_batch: int = Field(500, description="Most due tasks handled per tick.")
    tick_concurrency: int = Field(
        32, ge=1, description="Due tasks decided concurrently within a tick (writes overlap)."
    )
    reconcile_seconds: float = Field(
        15.0, description="Real seconds between checks for queued tasks whose event was lost."
    )
    reconcile_stale_seconds: float = Field(
        60.0, description="A task queued this many real seconds ago is announced again."
    )
    reconcile_batch: int = Field(1000, description="Most tasks re-announced per check.")
    drain_check_seconds: float = Field(
        0.25,
        description="Real seconds between checks of campaigns whose tasks became final for "
        "whether nothing is left to call (one check per campaign, however many tasks ended).",
    )
    recheck_hours: float = Field(
        24.0, description="A task with no window inside the horizon is re-checked this often."
    )


@lru_cache
def get_settings() -> PlannerSettings:
    return PlannerSettings()
