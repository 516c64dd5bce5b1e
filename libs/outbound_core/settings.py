"""Settings shared by every service.

Infrastructure settings use global environment names (``KAFKA_BOOTSTRAP_SERVERS``,
``MONGODB_URL``, ``OUTBOUND_CLOCK_SPEED`` …) because every service must point at the same
servers and the same clock; a service's own settings use its own prefix (``TASK_PLANNER_…``).
Settings are loaded through each service's cached ``get_settings()``, never at import time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from outbound_core.clock import Clock, build_clock


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class ServiceSettings(BaseSettings):
    """Base settings; subclasses set ``env_prefix`` and their own defaults."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = "outbound"
    environment: Literal["development", "test", "production"] = Field(
        "development", validation_alias=_env("OUTBOUND_ENVIRONMENT")
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092",
        validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"),
        description="Comma-separated Kafka bootstrap servers.",
    )
    kafka_idempotent_producer: bool = Field(
        False,
        validation_alias=_env("KAFKA_IDEMPOTENT_PRODUCER"),
        description="Idempotent producer; off for the embedded broker (it rejects "
        "InitProducerId), on for real Kafka.",
    )
    kafka_partitions: int = Field(
        4,
        validation_alias=_env("KAFKA_TOPIC_PARTITIONS"),
        ge=1,
        le=1000,
        description="Partitions for topics the services create.",
    )
    kafka_session_timeout_ms: int = Field(
        10_000,
        validation_alias=_env("KAFKA_SESSION_TIMEOUT_MS"),
        description="Consumer session timeout: how soon a killed consumer's partitions move.",
    )
    kafka_fetch_max_wait_ms: int = Field(
        500,
        validation_alias=_env("KAFKA_FETCH_MAX_WAIT_MS"),
        description="Longest a fetch waits for data (long polling: a fetch returns as soon as "
        "data arrives, so this costs no latency; short waits only burn idle CPU in every "
        "consumer and in the broker).",
    )
    broker_check_seconds: float = Field(
        5.0,
        gt=0,
        validation_alias=_env("KAFKA_BROKER_CHECK_SECONDS"),
        description="Real seconds between checks that the broker still has the topics (a "
        "broker that restarted empty is repaired: topics recreated, clients reconnected).",
    )
    mongodb_url: str = Field(
        "mongodb://127.0.0.1:37017",
        validation_alias=_env("MONGODB_URL"),
        description="MongoDB connection string.",
    )
    clock_start: datetime | None = Field(
        None,
        validation_alias=_env("OUTBOUND_CLOCK_START"),
        description="Virtual clock start instant (simulation only).",
    )
    clock_anchor: float | None = Field(
        None,
        validation_alias=_env("OUTBOUND_CLOCK_ANCHOR"),
        description="Real epoch seconds at which the virtual clock reads its start.",
    )
    clock_speed: float = Field(
        1.0,
        validation_alias=_env("OUTBOUND_CLOCK_SPEED"),
        gt=0,
        description="Virtual seconds per real second (3600: an hour per second).",
    )
    log_level: str = Field("INFO", validation_alias=_env("OUTBOUND_LOG_LEVEL"))
    log_json: bool | None = Field(
        None,
        validation_alias=_env("OUTBOUND_LOG_JSON"),
        description="JSON logs; default: JSON unless stderr is a terminal.",
    )
    http_host: str = Field("127.0.0.1", validation_alias=_env("OUTBOUND_HTTP_HOST"))
    http_port: int = 8080
    database: str = "outbound"
    consume_concurrency: int = Field(
        32,
        validation_alias=_env("OUTBOUND_CONSUME_CONCURRENCY"),
        ge=1,
        description="Keys (tasks) whose events a per-key consumer applies at once; the events "
        "of one key stay in order (the planner's dispatches and dispositions, the disposition "
        "service's call ends).",
    )
    handler_max_attempts: int = Field(
        5,
        validation_alias=_env("OUTBOUND_HANDLER_MAX_ATTEMPTS"),
        ge=1,
        description="Attempts at a message whose handler keeps failing before it is "
        "dead-lettered (infrastructure errors are retried without limit).",
    )
    graceful_timeout_seconds: float = Field(
        15.0,
        validation_alias=_env("OUTBOUND_GRACEFUL_TIMEOUT"),
        description="How long a service may take to stop on SIGTERM.",
    )

    @model_validator(mode="after")
    def _production_needs_real_infra(self) -> ServiceSettings:
        if self.environment == "production" and self.clock_speed != 1.0:
            raise ValueError("OUTBOUND_CLOCK_SPEED must be 1 in production")
        return self

    def clock(self) -> Clock:
        return build_clock(start=self.clock_start, anchor=self.clock_anchor, speed=self.clock_speed)
