"""The marketer page: a small Starlette app mounted at ``/`` of the prediction service.

Server-rendered HTML (Jinja2, autoescaped) with SVG charts drawn in Python: no JavaScript, no
CDN, no web fonts, so it works offline and every value is in the HTML. Views:

- ``/``: the funnel, active vs lapsed, the RFM segments with CLV at risk, the most common
  next action and, beside each name when known, the segment's observed 90-day churn, and what
  drives churn risk across customers (``/overview.json`` has the numbers);
- ``/segment?name=...`` and ``/stage?name=...``: the customers of one segment (with its
  observed churn) or stage, sortable, with a CSV download (``/customers.csv``);
- ``/customer?id=...``: one customer's stage and path, the three predictions in plain words,
  the drivers (chart and sentences), the next-best-action, and recent events.

Views are plain functions, which Starlette runs in its thread pool: a customer view (Tree SHAP,
a DuckDB read of the events) never holds up the API's event loop. The language (English or
Korean) is a cookie set by ``/lang/<en|ko>``. When the service has an
API key, the page asks for it once (``/signin``, a form posted to the server) and keeps a
session (:class:`Sessions`): a random token in an HttpOnly, SameSite=Strict cookie, Secure over
https or behind a trusted TLS proxy (``LIFECYCLE_TRUST_PROXY``). The key never appears in a URL
or a cookie; sign-out ends the session on the server, and a restart ends them all. Wrong keys
are throttled per address with the API's (429 after ``LIFECYCLE_AUTH_ATTEMPTS``).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import logging
import math
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lifecycle.features.rfm import (
    NO_PURCHASE,
    OBSERVED_CHURN_COLUMN,
    OBSERVED_CHURN_DAYS,
    SEGMENTS,
)
from lifecycle.features.schema import STAGES
from lifecycle.serving import charts, i18n
from lifecycle.serving.guard import RUNTIME, Runtime, client_address, forwarded_https
from lifecycle.serving.population import (
    SORTABLE,
    Population,
    build_population,
    customers_of,
    overview_json,
)
from lifecycle.serving.schemas import PredictRequest

HERE = Path(__file__).parent
SESSION_COOKIE = "lifecycle_session"
LANG_COOKIE = "lifecycle_lang"
LIST_ROWS = 200
TASK_ORDER = ("churn", "next_stage", "clv")

log = logging.getLogger("lifecycle.serving")

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


class PageState:
    """The population summaries, computed once per engine."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._population: Population | None = None
        self._engine: Any = None
        self.error: str | None = None
        self.sessions = Sessions()

    def population(self, engine: Any = None) -> Population | None:
        """Return the population of ``engine`` (default: the runtime's; None without a table)."""
        engine = engine if engine is not None else self.runtime.engine
        if engine is None or engine.lookup is None:
            return None
        if self._engine is not engine:
            self._population, self._engine = build_population(engine), engine
        return self._population


SESSION_SECONDS = 12 * 3600


class Sessions:
    """The page's signed-in sessions, held by the worker: a random token each, for 12 hours.

    The cookie holds only the token (never the key, nothing derived from it); the server keeps
    a hash of it. :meth:`revoke` (sign-out) ends a session at once, and a restart ends them
    all. Thread-safe (the page's views run in threads); holds at most ``limit`` sessions,
    dropping the oldest.

    Examples
    --------
    >>> sessions = Sessions()
    >>> token = sessions.issue()
    >>> sessions.valid(token), sessions.valid("forged")
    (True, False)
    >>> sessions.revoke(token)
    >>> sessions.valid(token)
    False
    """

    def __init__(self, seconds: float = SESSION_SECONDS, limit: int = 10_000) -> None:
        self.seconds, self.limit = seconds, limit
        self._expiry: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def issue(self) -> str:
        """Start a session; return its token (for the cookie)."""
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        with self._lock:
            if len(self._expiry) >= self.limit:
                for old in [k for k, until in self._expiry.items() if until <= now]:
                    del self._expiry[old]
                while len(self._expiry) >= self.limit:
                    del self._expiry[next(iter(self._expiry))]
            self._expiry[_digest(token)] = now + self.seconds
        return token

    def valid(self, token: str) -> bool:
        """Return whether ``token`` is a live session (issued here, not expired nor revoked)."""
        if not token:
            return False
        key = _digest(token)
        with self._lock:
            until = self._expiry.get(key)
            if until is not None and until <= time.monotonic():
                del self._expiry[key]
                until = None
        return until is not None

    def revoke(self, token: str) -> None:
        """End the session of ``token`` (nothing happens for an unknown one)."""
        with self._lock:
            self._expiry.pop(_digest(token), None)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_app(runtime: Runtime = RUNTIME) -> Starlette:
    """Build the page app over a worker's runtime."""
    state = PageState(runtime)

    def lang_of(request: Request) -> i18n.Lang:
        return "ko" if request.cookies.get(LANG_COOKIE) == "ko" else "en"

    def signed_in(request: Request) -> bool:
        if runtime.settings.api_key is None:
            return True
        return state.sessions.valid(request.cookies.get(SESSION_COOKIE, ""))

    def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        lang = lang_of(request)
        engine = runtime.engine
        html = templates.get_template(template).render(
            lang=lang,
            t=lambda key, **v: i18n.text(key, lang, **v),
            i18n=i18n,
            path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            quote=quote,
            auth=runtime.settings.api_key is not None,
            versions=engine.versions if engine is not None else {},
            project=engine.project if engine is not None else runtime.settings.project,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def gate(request: Request) -> Response | Population:
        """Return the population, or the response to send instead (sign-in, loading)."""
        if not signed_in(request):
            return RedirectResponse("/signin", status_code=303)
        population = state.population()
        if population is not None:
            return population
        lang = lang_of(request)
        engine = runtime.engine
        if engine is not None and engine.lookup is None:
            return render(request, "loading.html", status=503, reason=i18n.text("no_lookup", lang))
        if state.error is not None:
            return render(
                request, "loading.html", status=503, reason=i18n.text("page_failed", lang)
            )
        reason = runtime.failure or i18n.text("loading", lang)
        return render(
            request, "loading.html", status=503, reason=reason, refresh=not runtime.failure
        )

    def data_gate(request: Request) -> Response | Population:
        """Return the population, or the JSON error a data download answers instead."""
        if not signed_in(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        population = state.population()
        if population is None:
            return JSONResponse({"error": "not_ready"}, status_code=503)
        return population

    def overview(request: Request) -> Response:
        population = gate(request)
        if isinstance(population, Response):
            return population
        lang = lang_of(request)
        engine = runtime.engine
        funnel = population.funnel
        funnel_chart = charts.bar_chart(
            [i18n.stage_name(s, lang) for s in funnel["stage"]],
            funnel["customers"].tolist(),
            [i18n.number(v, lang) for v in funnel["customers"]],
            notes=[
                "" if pd.isna(c) else f"({i18n.percent(c, lang)})" for c in funnel["conversion"]
            ],
            title=i18n.text("funnel", lang),
        )
        segments = population.segments
        risk_chart = charts.bar_chart(
            [i18n.segment_name(s, lang) for s in segments["segment"]],
            segments["clv_at_risk"].fillna(0).tolist(),
            [i18n.money(v, engine.currency, lang) for v in segments["clv_at_risk"]],
            title=i18n.text("clv_at_risk", lang),
        )
        drivers = population.churn_drivers
        driver_chart = charts.bar_chart(
            [i18n.feature_label(f, lang, engine.lifecycle) for f in drivers["feature"]],
            drivers["mean_abs"].tolist(),
            [i18n.number(v, lang, 2) for v in drivers["mean_abs"]],
            notes=[
                i18n.text("raises_in", lang, share=i18n.percent(s, lang))
                for s in drivers["raises_share"]
            ],
            title=i18n.text("churn_drivers", lang),
            width=860,
            label_width=330,
        )
        action_names = {a.id: a.names[lang] for a in engine.catalog.actions}
        return render(
            request,
            "overview.html",
            population=population,
            funnel=funnel,
            segments=segments,
            funnel_chart=funnel_chart,
            risk_chart=risk_chart,
            driver_chart=driver_chart,
            action_names=action_names,
            currency=engine.currency,
            sample=population.driver_sample,
            drivers=drivers,
            config=engine.lifecycle,
            observed_churn=observed_churn(population),
            observed_days=OBSERVED_CHURN_DAYS,
        )

    def _list_args(request: Request) -> tuple[str | None, str | None, str, str | None]:
        segment = request.query_params.get("segment") or request.query_params.get("name")
        stage = request.query_params.get("stage")
        if request.url.path == "/stage":
            segment, stage = None, request.query_params.get("name")
        sort = request.query_params.get("sort", "clv_at_risk")
        problem = None
        if segment is not None and segment not in (*SEGMENTS, NO_PURCHASE):
            problem = "segment"
        if stage is not None and stage not in STAGES:
            problem = "stage"
        if segment is None and stage is None:
            problem = "name"
        return segment, stage, sort if sort in SORTABLE else "clv_at_risk", problem

    def customer_list(request: Request) -> Response:
        population = gate(request)
        if isinstance(population, Response):
            return population
        lang = lang_of(request)
        segment, stage, sort, problem = _list_args(request)
        if problem:
            return render(
                request, "message.html", status=404, message=i18n.text("unknown_list", lang)
            )
        table = customers_of(population, segment=segment, stage=stage, sort=sort)
        name = (
            i18n.segment_name(segment, lang)
            if segment is not None
            else i18n.stage_name(str(stage), lang)
        )
        engine = runtime.engine
        return render(
            request,
            "customers.html",
            name=name,
            kind="segment" if segment is not None else "stage",
            value=segment if segment is not None else stage,
            sort=sort,
            sortable=SORTABLE,
            rows=table.head(LIST_ROWS),
            total=len(table),
            action_names={a.id: a.names[lang] for a in engine.catalog.actions},
            currency=engine.currency,
            observed_churn=observed_churn(population).get(segment) if segment else None,
            observed_days=OBSERVED_CHURN_DAYS,
        )

    def customers_csv(request: Request) -> Response:
        population = data_gate(request)
        if isinstance(population, Response):
            return population
        segment, stage, sort, problem = _list_args(request)
        if problem:
            return JSONResponse({"error": f"unknown {problem}"}, status_code=404)
        table = customers_of(population, segment=segment, stage=stage, sort=sort)
        columns = ["customer_id", "stage", "segment", "churn_risk", "next_stage_probability"]
        columns += ["clv", "clv_p10", "clv_p90", "clv_at_risk", "action"]
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in table[columns].itertuples(index=False):
            writer.writerow([_cell(v) for v in row])
        label = (segment or stage or "customers").lower().replace(" ", "_")
        return Response(
            buffer.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"content-disposition": f'attachment; filename="{label}.csv"'},
        )

    def customer(request: Request) -> Response:
        population = gate(request)
        if isinstance(population, Response):
            return population
        lang = lang_of(request)
        engine = runtime.engine
        customer_id = request.query_params.get("id", "").strip()
        if not customer_id:
            return render(request, "customer.html", answer=None, customer_id="")
        if customer_id not in engine.lookup.index:
            # A search that finds nobody is an answer, not an error (the API says 404).
            return render(request, "customer.html", answer=None, customer_id=customer_id)
        request_ = PredictRequest(customer_id=customer_id, lang=lang, top_k=6)
        answer = engine.predict([request_])[0].model_dump()
        row = engine.lookup.frame.iloc[engine.lookup.index[customer_id]]
        charts_by_task = {}
        for task in TASK_ORDER:
            explanation = answer["explanations"].get(task)
            if not explanation:
                continue
            drivers = explanation["drivers"]
            charts_by_task[task] = charts.diverging_chart(
                [i18n.feature_label(d["feature"], lang, engine.lifecycle) for d in drivers],
                [d["contribution"] for d in drivers],
                title=i18n.text(task if task != "next_stage" else "next_stage_probability", lang)
                if task != "churn"
                else i18n.text("churn_risk", lang),
                up_word="\u25b2",
                down_word="\u25bc",
                up_is_good=task != "churn",
            )
        return render(
            request,
            "customer.html",
            answer=answer,
            customer_id=customer_id,
            charts_by_task=charts_by_task,
            task_order=[t for t in TASK_ORDER if t in charts_by_task],
            path_steps=_path(row, answer["stage"], engine.lookup.cutoff, lang),
            events=engine.recent_events(customer_id) if engine.events_path else None,
            currency=engine.currency,
            horizons=answer["horizons_days"],
        )

    def overview_data(request: Request) -> Response:
        population = data_gate(request)
        if isinstance(population, Response):
            return population
        return JSONResponse(overview_json(population))

    async def signin_form(request: Request) -> Response:
        return render(request, "signin.html", wrong=False)

    async def signin(request: Request) -> Response:
        settings = runtime.settings
        key = settings.api_key
        form = await request.form()
        given = str(form.get("key", ""))
        if key is None:
            return RedirectResponse("/", status_code=303)
        headers = {k.lower(): v for k, v in request.headers.items()}
        address = client_address(request.scope, headers, settings.trust_proxy)
        wait = runtime.throttle.wait(address)
        if wait:
            log.warning("POST /signin: 429, an address refused for too many wrong keys")
            refused = render(request, "signin.html", status=429, wrong=True)
            refused.headers["retry-after"] = str(math.ceil(wait))
            return refused
        if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
            runtime.throttle.failed(address)
            log.warning("POST /signin: 401, a sign-in with a wrong key refused")
            return render(request, "signin.html", status=401, wrong=True)
        runtime.throttle.succeeded(address)
        response = RedirectResponse("/", status_code=303)
        https = request.url.scheme == "https"
        response.set_cookie(
            SESSION_COOKIE,
            state.sessions.issue(),
            httponly=True,
            samesite="strict",
            secure=https or (settings.trust_proxy and forwarded_https(headers)),
            max_age=SESSION_SECONDS,
        )
        return response

    async def signout(request: Request) -> Response:
        state.sessions.revoke(request.cookies.get(SESSION_COOKIE, ""))
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="strict")
        return response

    async def set_lang(request: Request) -> Response:
        lang = request.path_params["lang"]
        target = request.query_params.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        response = RedirectResponse(target, status_code=303)
        if lang in i18n.LANGS:
            response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
        return response

    app = Starlette(
        routes=[
            Route("/", overview),
            Route("/segment", customer_list),
            Route("/stage", customer_list),
            Route("/customers.csv", customers_csv),
            Route("/customer", customer),
            Route("/overview.json", overview_data),
            Route("/signin", signin_form, methods=["GET"]),
            Route("/signin", signin, methods=["POST"]),
            Route("/signout", signout, methods=["POST"]),
            Route("/lang/{lang}", set_lang),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )
    app.state.page = state
    return app


def observed_churn(population: Population) -> dict[str, float]:
    """Return each segment's observed churn rate, for the segments where it is known."""
    rates = population.segments.set_index("segment")[OBSERVED_CHURN_COLUMN]
    return {str(k): float(v) for k, v in rates.dropna().items()}


def _cell(value: Any) -> Any:
    """Return a CSV cell; text a spreadsheet would run as a formula gets a leading quote."""
    if isinstance(value, float) and pd.isna(value):
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _path(row: pd.Series, stage: str, cutoff: pd.Timestamp, lang: i18n.Lang) -> list[dict]:
    """Return the stages reached so far, with the date each was reached when known."""
    ages = {
        "reach": row.get("days_since_first_event"),
        "acquisition": row.get("days_since_signup"),
        "conversion": row.get("days_since_first_purchase"),
    }
    ages[stage] = row.get("days_in_stage") if stage not in ages else ages[stage]
    steps = []
    for name in STAGES[: STAGES.index(stage) + 1]:
        age = ages.get(name)
        when = None
        if age is not None and pd.notna(age):
            when = i18n.date((cutoff - pd.Timedelta(days=float(age))).to_pydatetime(), lang)
        steps.append({"stage": i18n.stage_name(name, lang), "when": when, "current": name == stage})
    return steps
