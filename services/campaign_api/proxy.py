"""Forwarding of authenticated requests to the internal API of the service that owns the data
(webhook subscriptions live in the webhook service, the opt-out list in the disposition
service): the caller's tenancy travels in headers, upstream errors become problems."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import Response

from campaign_api.auth import Principal
from campaign_api.problems import Problem


async def forward(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    who: Principal,
    service: str,
    rejected: str,
    content: bytes | None = None,
    json: dict[str, Any] | None = None,
    params: Any = None,
    content_type: str = "application/json",
) -> Response:
    try:
        upstream = await client.request(
            method,
            url,
            content=content,
            json=json,
            params=params,
            headers={
                "X-Outbound-Org-Id": who.org_id,
                "X-Outbound-Workspace-Id": who.workspace_id,
                "Content-Type": content_type,
            },
        )
    except httpx.HTTPError as exc:
        raise Problem(503, "Service unavailable", f"{service} service unreachable: {exc}") from exc
    if upstream.status_code >= 400:
        try:
            detail = upstream.json().get("detail", upstream.text)
        except ValueError:
            detail = upstream.text
        raise Problem(upstream.status_code, rejected, str(detail))
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type"),
    )
