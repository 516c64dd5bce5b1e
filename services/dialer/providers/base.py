"""The voice-provider interface.

A provider is asked to dial one call at a time and reports the end of each call through the
callback registered with :meth:`VoiceProvider.on_end`. ``call_id`` is the idempotency key:
asking a provider twice to dial the same ``call_id`` places one call (the dialer re-asks after
a crash between recording the call and hearing back from the provider)."""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import APIRouter

from outbound_core.service import Runtime


class ProviderError(Exception):
    """The provider could not place the call (timeout, 5xx, refused). The attempt counts as
    failed (retryable); it is never lost."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DialOrder:
    """One call to place, with the agent's script already rendered for this contact."""

    call_id: str
    task_id: str
    attempt: int
    to: str
    from_number: str | None
    language: str
    greeting: str
    system_prompt: str
    voicemail_action: str = "hangup"
    voicemail_message: str = ""
    sim_outcomes: tuple[str, ...] = ()
    agent_name: str = ""
    context: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CallResult:
    """How a call ended, as the provider reports it."""

    call_id: str
    status: str  # completed | no_answer | busy | failed | voicemail
    outcome: str | None
    turns: int
    duration_seconds: float
    started_at: datetime
    ended_at: datetime
    transcript: list[dict[str, str]] = field(default_factory=list)
    cost: float = 0.0
    callback_at: datetime | None = None
    recording_url: str | None = None


EndHandler = Callable[[CallResult], Awaitable[object]]


class VoiceProvider(abc.ABC):
    name: str

    def __init__(self) -> None:
        self._end_handler: EndHandler | None = None

    def on_end(self, handler: EndHandler) -> None:
        """Register who hears about ended calls (the dialer); must be idempotent itself,
        because a provider may report the same end more than once."""
        self._end_handler = handler

    async def _report_end(self, result: CallResult) -> None:
        if self._end_handler is None:
            raise RuntimeError(f"{self.name} provider has no end handler")
        await self._end_handler(result)

    def install(self, rt: Runtime) -> None:  # noqa: B027 - optional hook, most need nothing
        """Register startup hooks and background loops on the runtime, if any."""

    def routers(self) -> list[APIRouter]:
        """HTTP routes the provider needs on the dialer's app (e.g. its callback endpoint)."""
        return []

    @abc.abstractmethod
    async def dial(self, order: DialOrder) -> None:
        """Place the call (idempotent per ``order.call_id``); raise :class:`ProviderError` if it
        could not be placed."""
