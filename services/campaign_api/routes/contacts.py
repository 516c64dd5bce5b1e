"""``/v1/campaigns/{id}/contacts``: append contacts as JSON, a CSV body or an uploaded file;
remove contacts that have not been called yet; and a starter CSV file."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile as StarletteUpload

from campaign_api.auth import Auth
from campaign_api.campaigns import CampaignService
from campaign_api.csvin import MAX_FILE_BYTES, TEMPLATE, CsvError, ParsedCsv, parse_csv
from campaign_api.problems import Problem
from campaign_api.routes import examples
from campaign_api.routes.campaigns import IdempotencyKey, OnError, created, replay
from campaign_api.schemas import CampaignIn, ContactsRemove

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
        if not isinstance(upload, StarletteUpload):
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
    csv = _parse(data, max_rows=max_rows)
    return list(csv.rows), csv.lines, _row_errors(csv)


def _parse(data: bytes, *, max_rows: int) -> ParsedCsv:
    try:
        return parse_csv(data, max_rows=max_rows)
    except CsvError as exc:
        raise Problem(
            exc.status,
            "Too large" if exc.status == 413 else "Invalid file",
            str(exc),
            [{"field": "file", "message": str(exc)}],
        ) from exc


def _row_errors(csv: ParsedCsv) -> list[dict[str, Any]]:
    return [{"field": f"row {e.row}.{e.field}", "message": e.message} for e in csv.errors]


@router.post(
    "/csv",
    status_code=201,
    summary="Create a campaign from a CSV file",
    description="A `multipart/form-data` request: the campaign settings as JSON in field "
    "`campaign` (the body of `POST /v1/campaigns`, without `contacts`) and the contacts file "
    "in field `file` (at most 5 MB and 10,000 rows; columns `phone` or `phone1`…`phone10`, "
    "`name`, `email`, `timezone`, any other column becomes a variable). Bad rows are reported "
    "by line number and column: the request is rejected, or with `?on_error=skip` the campaign "
    "is created with the good rows and the bad ones are listed in `skipped`.",
    responses={
        201: {
            "content": {
                "application/json": {
                    "example": {**examples.CAMPAIGN_CREATED, "skipped": []},
                }
            }
        }
    },
)
async def create_from_csv(
    who: Auth,
    request: Request,
    campaign: Annotated[
        str,
        Form(
            description="Campaign settings as JSON (as for `POST /v1/campaigns`).",
            examples=['{"name": "Renewals", "script_id": "agt_…", "language": "hi-IN"}'],
        ),
    ],
    file: Annotated[UploadFile, File(description="The contacts, as a UTF-8 CSV file.")],
    idempotency_key: IdempotencyKey = None,
    on_error: OnError = "reject",
) -> JSONResponse:
    try:
        body = CampaignIn.model_validate_json(campaign)
    except ValidationError as exc:
        # the same problem+json as a JSON body, with paths under the form field
        raise RequestValidationError(
            [{**e, "loc": ("body", "campaign", *e["loc"])} for e in exc.errors()]
        ) from exc
    if body.contacts:
        raise Problem(
            422,
            "Invalid request",
            "send the contacts in the file, not in campaign.contacts",
            [{"field": "campaign.contacts", "message": "not allowed with a file"}],
        )
    prior = await replay(request, who, idempotency_key)
    if prior is not None:
        return prior
    svc = _svc(request)
    csv = _parse(await file.read(MAX_FILE_BYTES + 1), max_rows=svc.max_contacts)
    doc = await svc.create(
        who=who,
        body=body,
        raw=list(csv.rows),
        where=lambda i: f"row {csv.lines[i]}",
        prior_errors=_row_errors(csv),
        skip_errors=on_error == "skip",
    )
    return await created(request, who, idempotency_key, doc)


@router.post(
    "/{campaign_id}/contacts",
    summary="Append contacts (JSON, CSV body or file upload)",
    openapi_extra=_BODY_DOC,
    responses={200: {"content": {"application/json": {"example": examples.CONTACTS_ADDED}}}},
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
    responses={200: {"content": {"application/json": {"example": examples.CONTACTS_REMOVED}}}},
)
async def remove_contacts(
    campaign_id: str, body: ContactsRemove, who: Auth, request: Request
) -> dict[str, Any]:
    return await _svc(request).remove_contacts(
        who=who, campaign_id=campaign_id, phones=body.phones, default_region=body.default_region
    )
