"""Serve the dashboard page and its static assets.

Everything the page loads comes from ``static/`` in this package: no CDN, no web
fonts, so the page works on a customs network without internet access. The
Content-Security-Policy header makes the browser refuse any other origin.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from api.errors import NotFound

STATIC_DIR = Path(__file__).parent / "static"

# Inline styles are allowed because ECharts sets style attributes on the nodes it
# creates; scripts come from this origin only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}

router = APIRouter(tags=["dashboard"], include_in_schema=False)


def _file_response(path: Path) -> Response:
    response = FileResponse(path, media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"))
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-cache"
    return response


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/dashboard/", status_code=307)


@router.get("/dashboard")
def dashboard_without_slash() -> RedirectResponse:
    return RedirectResponse("/dashboard/", status_code=307)


@router.get("/dashboard/")
def dashboard() -> Response:
    """The single-page dashboard; its views are chosen by the URL fragment."""
    return _file_response(STATIC_DIR / "index.html")


@router.get("/dashboard/static/{name:path}")
def static_file(name: str) -> Response:
    """A file under static/; paths that leave that folder are not found."""
    path = (STATIC_DIR / name).resolve()
    if not path.is_relative_to(STATIC_DIR.resolve()) or not path.is_file() or path.suffix not in MEDIA_TYPES:
        raise NotFound("Dashboard file", "看板文件", name)
    return _file_response(path)
