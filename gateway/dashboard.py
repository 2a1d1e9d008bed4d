"""The live dashboard at `/`: one static page (HTML, JS, CSS, no build step, nothing fetched
from elsewhere, since gateways often run offline) that polls `/status` and streams
transcriptions from `/v1/audio/transcriptions`.

The page runs under a Content-Security-Policy that allows only this origin's scripts and
styles, so nothing a transcript contains can run as code even if it slipped past escaping.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from gateway.errors import ApiError

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).parent / "static"
ASSETS = {"dashboard.js", "dashboard.css", "live.js"}
POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@router.get("/")
async def dashboard() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/static/{name}")
async def asset(name: str) -> FileResponse:
    """The page's script and style sheet (only these: no path is taken from the request)."""
    if name not in ASSETS:
        raise ApiError(404, f"no static file {name!r}", code="not_found")
    return FileResponse(STATIC / name, headers=HEADERS)
