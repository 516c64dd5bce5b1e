"""The web console: static files served by campaign-api at ``/console``. The page calls the
public API with the same API keys (entered in the page, kept in the browser)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

STATIC = Path(__file__).resolve().parent.parent / "console"
TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

router = APIRouter(include_in_schema=False)


@router.get("/console")
async def console_root() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get("/console/")
async def console_index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/console/{name}")
async def console_asset(name: str) -> FileResponse:
    path = (STATIC / name).resolve()
    if path.parent != STATIC or path.suffix not in TYPES or not path.is_file():
        from campaign_api.problems import Problem

        raise Problem(404, "Not found", f"{name} is not part of the console")
    return FileResponse(path, media_type=TYPES[path.suffix])
