"""The dashboard's web app: URL -> page (pages.py) -> template. Read-only: every route is a
GET over Ledger reads.

Untrusted text (skills, prompts, model replies, run names) reaches a page only through Jinja2
with autoescaping on; the one piece of markup passed through is the score chart, which
machine/reports/charts.py builds from numbers and escapes its one text (the run's name). As a
second wall, every response forbids inline scripts (Content-Security-Policy: scripts only
from /static/), so a reply holding `<script>` is text even if an escape were ever missed.
Loopback binds also check the Host header, so a web page elsewhere cannot read the ledger
through DNS rebinding."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import jinja2
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from skillopt.commands.errors import InputError
from skillopt.commands.serve import pages
from skillopt.ledger.errors import CorruptEvent, LedgerError

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",  # a live view: never a stale page from the cache
}
STATIC = {"dash.css": "text/css; charset=utf-8", "dash.js": "text/javascript; charset=utf-8"}
LOOPBACK = ("127.0.0.1", "localhost")


def _f4(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("skillopt.commands.serve", "templates"),
        autoescape=True,  # every {{ }} is escaped unless marked safe (only the chart is)
        undefined=jinja2.StrictUndefined,  # a missing key is a bug to see, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["f4"] = _f4
    env.filters["short"] = lambda h: (h or "")[:12]
    # The score chart only: machine/reports/charts.py builds it from numbers and escapes its
    # one text (the run's name). Nothing else from the ledger is ever marked safe.
    env.filters["chart_svg"] = Markup
    env.filters["query"] = lambda d: urlencode({k: v for k, v in d.items() if v not in ("", None)})
    return env


def create_app(ledger: Any, location: str, host: str) -> Starlette:
    """The app over an open ledger; `location` is how pages name it (password masked)."""
    env = _templates()

    def html(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        text = env.get_template(name).render(db=location, **context)
        return HTMLResponse(text, status_code, headers=HEADERS)

    def data(value: Any) -> JSONResponse:
        return JSONResponse(value, headers=HEADERS)

    def guarded(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
        """A page's errors as a page with one line (escaped), never a traceback: bad input
        (a REF, an id) is 404, a ledger that cannot be read 500."""

        @functools.wraps(fn)
        def endpoint(request: Request) -> Response:
            try:
                return fn(request)
            except (InputError, LedgerError) as exc:
                return html("error.html", 404, message=str(exc))
            except CorruptEvent as exc:
                return html("error.html", 500, message=f"the ledger is damaged: {exc}")
            except Exception as exc:  # the server goes on; the page and the log say what
                line = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                sys.stderr.write(f"serve: {request.url.path}: {line}\n")
                return html("error.html", 500, message=f"could not render this page ({line})")

        return endpoint

    def index(request: Request) -> Response:
        return html("runs.html", runs=pages.runs(ledger))

    def api_runs(request: Request) -> Response:
        return data({"runs": pages.runs(ledger)})

    def run(request: Request) -> Response:
        return html("run.html", page=pages.run(ledger, request.path_params["run"]))

    def run_live(request: Request) -> Response:
        return html("run_live.html", page=pages.run(ledger, request.path_params["run"]))

    def api_status(request: Request) -> Response:
        return data(pages.status(ledger, request.path_params["run"]))

    def skill(request: Request) -> Response:
        p = request.path_params
        against = request.query_params.get("against") or None
        return html("skill.html", page=pages.skill(ledger, p["run"], p["ref"], against))

    def calls(request: Request) -> Response:
        q = request.query_params
        step = q.get("step") or None
        if step is not None and not step.isdigit():
            raise InputError(f"step {step!r}: give a step number")
        offset = q.get("offset", "0")
        page = pages.calls(
            ledger,
            request.path_params["run"],
            q.get("role") or None,
            q.get("stage") or None,
            q.get("unit") or None,
            None if step is None else int(step),
            int(offset) if offset.isdigit() else 0,
        )
        return html("calls.html", page=page)

    def call(request: Request) -> Response:
        p = request.path_params
        return html("call.html", page=pages.call(ledger, p["run"], p["call"]))

    def blob(request: Request) -> Response:
        return html("blob.html", page=pages.blob(ledger, request.path_params["hash"]))

    def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC:
            return Response("not found", 404, headers=HEADERS)
        text = resources.files("skillopt.commands.serve").joinpath("static", name).read_text()
        return Response(text, headers=HEADERS, media_type=STATIC[name])

    routes = [
        Route("/", guarded(index)),
        Route("/api/runs", guarded(api_runs)),
        Route("/api/runs/{run}/status", guarded(api_status)),
        Route("/runs/{run}", guarded(run)),
        Route("/runs/{run}/live", guarded(run_live)),
        Route("/runs/{run}/skills/{ref}", guarded(skill)),
        Route("/runs/{run}/calls", guarded(calls)),
        Route("/runs/{run}/calls/{call}", guarded(call)),
        Route("/blobs/{hash}", guarded(blob)),
        Route("/static/{name}", static),
        Route("/favicon.ico", lambda request: Response(status_code=204, headers=HEADERS)),
    ]
    allowed = list(LOOPBACK) if host in LOOPBACK else ["*"]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed)]
    return Starlette(routes=routes, middleware=middleware)
