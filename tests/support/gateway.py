"""A real local HTTP server acting as a voice gateway for the ``http`` provider.

Each contact carries its script in the ``GW`` variable: one action per attempt, comma-separated
(the last repeats). Actions:

- a label (``interested``, ``opt_out``, …): accept, then report ``call.started`` and a completed
  ``call.ended`` with that outcome label, signed with the shared secret;
- ``said:<words>``: a completed call with no label whose transcript has the contact saying
  ``<words>`` (for the transcript classifier);
- ``5xx``: answer 503; ``timeout``: answer only after ``slow_seconds`` (longer than the dialer
  waits), then report the call ended anyway (a late callback); ``hang``: accept and never call
  back.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook


@dataclass
class Placed:
    idempotency_key: str
    body: dict[str, Any]
    action: str


@dataclass
class Gateway:
    secret: str
    slow_seconds: float = 2.5
    placed: list[Placed] = field(default_factory=list)
    callbacks: list[tuple[str, int]] = field(default_factory=list)  # (call_id, dialer status)
    _server: ThreadingHTTPServer | None = None
    _client: httpx.Client | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/calls"

    def start(self) -> Gateway:
        gw = self
        # One client for every callback: creating one (its TLS context) takes seconds on a
        # loaded machine, which would make every callback arrive late.
        self._client = httpx.Client(timeout=10.0)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
                action = gw.action_for(body)
                with gw._lock:
                    gw.placed.append(Placed(self.headers.get("idempotency-key", ""), body, action))
                if action == "5xx":
                    self.send_response(503)
                    self.end_headers()
                    return
                if action == "timeout":
                    time.sleep(gw.slow_seconds)
                self.send_response(202)
                self.end_headers()
                if action != "hang":
                    threading.Thread(target=gw.report, args=(body, action), daemon=True).start()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._client is not None:
            self._client.close()

    @staticmethod
    def action_for(body: dict[str, Any]) -> str:
        script = [s.strip() for s in body["context"].get("GW", "interested").split(",")]
        return script[min(int(body["attempt"]), len(script)) - 1]

    def ended(self, call_id: str, action: str, greeting: str = "") -> dict[str, Any]:
        said = action.removeprefix("said:") if action.startswith("said:") else "Sure."
        label = None if action.startswith("said:") or action == "timeout" else action
        return {
            "type": "call.ended",
            "call_id": call_id,
            "status": "completed",
            "outcome": label,
            "duration_seconds": 64.0,
            "turns": 4,
            "transcript": [
                {"role": "agent", "text": greeting},
                {"role": "user", "text": "Hello?"},
                {"role": "agent", "text": "I'm calling about your plan."},
                {"role": "user", "text": said},
            ],
            "recording_url": f"https://recordings.test/{call_id}.wav",
            "cost": 0.11,
        }

    def report(self, body: dict[str, Any], action: str) -> None:
        started = {"type": "call.started", "call_id": body["call_id"], "provider_call_id": "gw-1"}
        self.send(body["callback_url"], started)
        self.send(
            body["callback_url"], self.ended(body["call_id"], action, body["agent"]["greeting"])
        )

    def send(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        secret: str | None = None,
        at: datetime | None = None,
    ) -> httpx.Response:
        text = json.dumps(payload)
        at = at or datetime.now(UTC)
        msg_id = f"msg_{payload['call_id']}_{payload['type']}_{time.monotonic_ns()}"
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret or self.secret).sign(msg_id, at, text),
            "content-type": "application/json",
        }
        assert self._client is not None
        r = self._client.post(url, content=text, headers=headers)
        with self._lock:
            self.callbacks.append((payload["call_id"], r.status_code))
        return r

    def calls_for(self, phone: str) -> list[Placed]:
        with self._lock:
            return [p for p in self.placed if p.body["to"] == phone]
