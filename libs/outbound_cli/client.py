"""A thin client of the public HTTP API."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        detail = body.get("detail") if isinstance(body, dict) else body
        errors = body.get("errors") if isinstance(body, dict) else None
        lines = [f"HTTP {status}: {detail}"]
        lines += [f"  {e['field']}: {e['message']}" for e in errors or []]
        super().__init__("\n".join(lines))
        self.status = status
        self.body = body


def default_key() -> str | None:
    key = os.environ.get("OUTBOUND_API_KEY")
    if key:
        return key
    path = Path(".outbound/api-key")
    return path.read_text().strip() if path.exists() else None


class Client:
    def __init__(self, base_url: str, key: str, *, timeout: float = 30.0) -> None:
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={"Authorization": f"Bearer {key}"},
        )

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        try:
            body = r.json()
        except ValueError:
            body = r.text
        if r.status_code >= 400:
            raise ApiError(r.status_code, body)
        return body

    def create_campaign(self, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/v1/campaigns", json=body)
        return result

    def campaigns(self, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", "/v1/campaigns", params={k: v for k, v in params.items() if v is not None}
        )
        return result

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/v1/campaigns/{campaign_id}")
        return result

    def act(self, campaign_id: str, action: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "PATCH", f"/v1/campaigns/{campaign_id}", json={"action": action}
        )
        return result

    def leads(self, campaign_id: str, *, limit: int = 1000, offset: int = 0) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET", f"/v1/campaigns/{campaign_id}/leads", params={"limit": limit, "offset": offset}
        )
        return result

    def all_leads(self, campaign_id: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            page = self.leads(campaign_id, offset=len(out))
            out += page["data"]
            if not page["data"] or len(out) >= page["total"]:
                return out
