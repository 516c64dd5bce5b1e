"""``/v1/campaigns/{id}/contacts``: append contacts as JSON, a CSV body or an uploaded file;
remove contacts that have not been called yet; and a starter CSV file."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from campaign_api.auth import Auth
from campaign_api.campaigns import CampaignService
from campaign_api.csvin import MAX_FILE_BYTES, TEMPLATE, CsvError, parse_csv
from campaign_api.problems import Problem
from campaign_api.schemas import ContactsRemove

router = APIRouter(prefix="/v1/campaigns", tags=["contacts"])

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": 'A JSON array of contacts (or `{"contacts": [...]}`), a CSV body '
        "(`text/csv`), or a `multipart/form-data` upload with the CSV in field `file`.",
        "content": {
            "application/json": {
                "schema": {"type": "array", "items": {"type": "object"}},
                "example": [
                    {"phone": "+919876543210", "name": "Priya Sharma", "loan_amount": "75000"}
                ],
            },
            "text/csv": {
                "schema": {"type": "string"},
                "example": "phone,name,loan_amount\n+919876543210,Priya Sharma,75000\n",
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


def _svc(request: Request) -> CampaignService:
    svc: CampaignService = request.app.state.campaigns
    return svc


@router.get(
    "/template.csv",
    summary="A starter contacts file",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
async def template_csv() -> Response:
    return Response(
        TEMPLATE,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="contacts-template.csv"'},
    )


async def _read_limited(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_FILE_BYTES + 64 * 1024:
        raise Problem(413, "Too large", f"the body exceeds the limit of {MAX_FILE_BYTES} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FILE_BYTES + 64 * 1024:
            raise Problem(413, "Too large", f"the body exceeds the limit of {MAX_FILE_BYTES} bytes")
    return body


async def read_contacts(
    request: Request, *, max_rows: int
) -> tuple[list[dict[str, Any]], list[int] | None, list[dict[str, Any]]]:
    """The raw contacts of a request, the file line of each (CSV) and file row errors."""
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=1, max_part_size=MAX_FILE_BYTES + 1)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Problem(
                422,
                "Invalid request",
                "send the CSV in a form field named file",
                [{"field": "file", "message": "missing"}],
            )
        data = await upload.read(MAX_FILE_BYTES + 1)
    elif ctype in ("text/csv", "application/csv", "text/plain"):
        data = await _read_limited(request)
    elif ctype == "application/json":
        body = await _read_limited(request)
        try:
            parsed = json.loads(body or b"null")
        except ValueError as exc:
            raise Problem(422, "Invalid request", f"the body is not valid JSON: {exc}") from exc
        if isinstance(parsed, dict):
            parsed = parsed.get("contacts")
        if not isinstance(parsed, list) or not all(isinstance(c, dict) for c in parsed):
            raise Problem(
                422,
                "Invalid request",
                "send a JSON array of contact objects",
                [{"field": "body", "message": "expected an array of objects"}],
            )
        if len(parsed) > max_rows:
            raise Problem(
                413,
                "Too large",
                f"{len(parsed)} contacts exceed the limit of {max_rows} per campaign",
            )
        return parsed, None, []
    else:
        raise Problem(
            415,
            "Unsupported media type",
            f"{ctype!r}: send application/json, text/csv or multipart/form-data",
        )
    try:
        csv = parse_csv(data, max_rows=max_rows)
    except CsvError as exc:
        raise Problem(
            exc.status,
            "Too large" if exc.status == 413 else "Invalid file",
            str(exc),
            [{"field": "file", "message": str(exc)}],
        ) from exc
    errors = [{"field": f"row {e.row}.{e.field}", "message": e.message} for e in csv.errors]
    return list(csv.rows), csv.lines, errors


@router.post(
    "/{campaign_id}/contacts",
    summary="Append contacts (JSON, CSV body or file upload)",
    openapi_extra=_BODY_DOC,
)
async def add_contacts(
    campaign_id: str,
    who: Auth,
    request: Request,
    on_error: Annotated[
        Literal["reject", "skip"],
        Query(description="`reject` the whole batch on any bad row, or `skip` bad rows."),
    ] = "reject",
    default_region: Annotated[str | None, Query(min_length=2, max_length=2)] = None,
) -> dict[str, Any]:
    svc = _svc(request)
    raw, lines, errors = await read_contacts(request, max_rows=svc.max_contacts)

    def where(i: int) -> str:
        return f"row {lines[i]}" if lines is not None else f"contacts[{i}]"

    return await svc.add_contacts(
        who=who,
        campaign_id=campaign_id,
        raw=raw,
        where=where,
        prior_errors=errors,
        default_region=default_region,
        skip_errors=on_error == "skip",
    )


@router.delete(
    "/{campaign_id}/contacts",
    summary="Remove contacts that have not been called yet",
    description="Only leads still waiting for their first call are removed; a called lead "
    "keeps its data and is counted in `already_called`.",
)
async def remove_contacts(
    campaign_id: str, body: ContactsRemove, who: Auth, request: Request
) -> dict[str, Any]:
    return await _svc(request).remove_contacts(
        who=who, campaign_id=campaign_id, phones=body.phones, default_region=body.default_region
    )
