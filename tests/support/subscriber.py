"""A real local HTTP server acting as a webhook subscriber: it verifies every delivery with
the ``standardwebhooks`` library and records what it received."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    webhook_id: str
    payload: dict[str, Any]
    verified: bool
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Subscriber:
    secret: str | None = None
    fail_first: int = 0
    status_code: int = 200
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks"

    def start(self) -> Subscriber:
        sub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with sub._lock:
                    sub.attempts += 1
                    if sub.attempts <= sub.fail_first:
                        self.send_response(503)
                        self.end_headers()
                        return
                    verified = False
                    if sub.secret:
                        try:
                            Webhook(sub.secret).verify(body, dict(self.headers.items()))
                            verified = True
                        except WebhookVerificationError:
                            verified = False
                    sub.received.append(
                        Received(
                            webhook_id=self.headers.get("webhook-id", ""),
                            payload=json.loads(body),
                            verified=verified,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                        )
                    )
                self.send_response(sub.status_code)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def of_type(self, event_type: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.payload.get("type") == event_type]
