from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from outbound_core.settings import ServiceSettings


class WebhookSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WEBHOOK_", extra="ignore", populate_by_name=True)
    service_name: str = "webhook"
    http_port: int = 8085
    database: str = "outbound_webhook"

    allow_private_urls: bool = Field(
        False,
        description="Allow subscriber URLs on loopback/private/link-local addresses (dev, tests).",
    )
    request_timeout_seconds: float = Field(10.0, gt=0, description="Per-request HTTP timeout.")
    max_response_bytes: int = Field(
        16_384, ge=0, description="At most this much of a subscriber's response body is read."
    )
    max_concurrency: int = Field(64, ge=1, description="Deliveries in flight, all endpoints.")
    per_endpoint_concurrency: int = Field(
        8, ge=1, description="Deliveries in flight to one subscription."
    )
    sender_interval_seconds: float = Field(0.05, gt=0, description="Sender poll interval (real).")
    sender_batch_size: int = Field(200, ge=1, description="Due deliveries read per sender tick.")
    subscription_cache_seconds: float = Field(
        1.0,
        ge=0,
        description="Intake caches each workspace's enabled subscriptions this long (real "
        "seconds); changes made through this replica apply at once, through another within this.",
    )
    retry_schedule_seconds: list[float] = Field(
        default_factory=lambda: [0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0],
        description="Delay before each attempt (service clock); its length is the attempt cap.",
    )
    retry_jitter: float = Field(0.1, ge=0, lt=1, description="Relative jitter on retry delays.")
    max_retry_after_seconds: float = Field(
        86_400, gt=0, description="Longest Retry-After honoured."
    )
    deliveries_page_size: int = Field(50, ge=1, le=500)
    secret_rotation_grace_seconds: float = Field(
        86_400,
        ge=0,
        description="After a secret rotation, deliveries are signed with both secrets this long.",
    )
    disable_after_failing_seconds: float = Field(
        5 * 86_400,
        gt=0,
        description="An endpoint whose deliveries have failed without a success for this long "
        "is disabled (status disabled_failing).",
    )

    @property
    def require_https(self) -> bool:
        """https only in production, unless private destinations are explicitly allowed."""
        return self.environment == "production" and not self.allow_private_urls


@lru_cache
def get_settings() -> WebhookSettings:
    return WebhookSettings()
