"""The web pages: login, the agent panel, the supervisor wallboard and the audit viewer.

The pages are server-rendered shells (aiohttp-jinja2, autoescape on) that carry
no confidential data: what they show comes from the JSON API and the live feed
(:mod:`hotline.web.live`), which enforce the roles. So the shells and
``/static/`` are served without credentials, and a page whose ``/api/me`` is 401
sends the browser to ``/login``. The scripts are ES modules under
``hotline/web/static`` (no library, no build step); every page is sent with a
strict Content-Security-Policy (scripts and styles from this origin only, no
inline script), and the scripts write text with ``textContent`` only, so a
caller named ``<img src=x onerror=alert(1)>`` stays text.

Languages: English and Chinese (zh-CN), from the JSON message catalogs in
``hotline/web/locale``; chosen by ``?lang=`` (remembered in the ``hotline_lang``
cookie), else that cookie, else ``Accept-Language``. The page hands its catalog
to the scripts in a ``<script type="application/json">`` element (data, not code).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Final

import aiohttp_jinja2
import jinja2
from aiohttp import web

from hotline.web.auth import PAGE_PATHS, STATIC_PREFIX
from hotline.web.keys import SETTINGS

__all__ = ["CSP", "LANGUAGES", "PAGE_PATHS", "choose_language", "install"]

_HERE: Final = Path(__file__).resolve().parent
LANGUAGES: Final = ("en", "zh-CN")
"""The catalogs; the first is the default."""
LANG_COOKIE: Final = "hotline_lang"
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
"""The pages' Content-Security-Policy."""

routes = web.RouteTableDef()


@cache
def catalog(language: str) -> dict[str, str]:
    """The messages of ``language`` (one of :data:`LANGUAGES`)."""
    text = (_HERE / "locale" / f"{language}.json").read_text(encoding="utf-8")
    messages: dict[str, str] = json.loads(text)
    return messages


def _match(tag: str) -> str | None:
    tag = tag.strip().lower()
    if tag.startswith("zh"):
        return "zh-CN"
    if tag.startswith("en"):
        return "en"
    return None


def choose_language(query: str | None, cookie: str | None, accept_language: str) -> str:
    """``?lang=``, else the cookie, else the best ``Accept-Language`` match, else English."""
    for given in (query, cookie):
        if given in LANGUAGES:
            return given
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        language = _match(tag)
        if language is not None and weight > 0:
            ranked.append((-weight, index, language))
    return min(ranked)[2] if ranked else LANGUAGES[0]


def _render(request: web.Request, template: str, **context: Any) -> web.Response:
    query = request.query.get("lang")
    language = choose_language(
        query, request.cookies.get(LANG_COOKIE), request.headers.get("Accept-Language", "")
    )
    messages = catalog(language)
    other = LANGUAGES[1] if language == LANGUAGES[0] else LANGUAGES[0]
    response = aiohttp_jinja2.render_template(
        template,
        request,
        {
            "lang": language,
            "other_lang": other,
            "t": messages,
            "messages": messages,
            **context,
        },
    )
    if query in LANGUAGES:
        response.set_cookie(LANG_COOKIE, query, path="/", samesite="Strict", httponly=True)
    response.headers["Cache-Control"] = "no-store"
    return response


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    """The sign-in form (it posts to ``/api/login``)."""
    return _render(request, "login.html", page="login")


@routes.get("/agent")
async def agent_page(request: web.Request) -> web.Response:
    """The agent panel."""
    return _render(request, "agent.html", page="agent")


@routes.get("/wallboard")
async def wallboard_page(request: web.Request) -> web.Response:
    """The supervisor wallboard (``?big=1``: big-screen mode, no controls)."""
    return _render(
        request,
        "wallboard.html",
        page="wallboard",
        big=request.query.get("big") == "1",
        long_call=int(request.app[SETTINGS].panels.long_call),
    )


@routes.get("/audit")
async def audit_page(request: web.Request) -> web.Response:
    """The audit-log viewer (for admins: ``/api/audit`` refuses anyone else)."""
    return _render(request, "audit.html", page="audit")


async def _csp(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the Content-Security-Policy on every page and script."""
    if not request.path.startswith("/api/"):
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "same-origin"


def install(app: web.Application) -> None:
    """Add the pages, the static files and the page headers to ``app``."""
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(_HERE / "templates")),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    )
    app.router.add_routes(routes)
    app.router.add_static(STATIC_PREFIX, _HERE / "static", append_version=False)
    app.on_response_prepare.append(_csp)
