"""The marketer page: a small Starlette app mounted at ``/`` of the prediction service.

Server-rendered HTML (Jinja2, autoescaped) with SVG charts drawn in Python: no JavaScript, no
CDN, no web fonts, so it works offline and every value is in the HTML. Views:

- ``/``: the funnel, active vs lapsed, how customers moved through the stages over the last
  30, 90 or 180 days (``?flow=``; needs the events, see
  :func:`~lifecycle.serving.population.stage_flows`), the RFM segments with CLV at risk, the
  most common next action and, beside each name when known, the segment's observed 90-day
  churn, and what drives churn risk across customers (``/overview.json`` has the numbers);
- ``/segment?name=...`` and ``/stage?name=...``: the customers of one segment (with its
  observed churn) or stage, sortable, with a CSV download (``/customers.csv``);
- ``/customer?id=...``: one customer's stage and path, the three predictions in plain words,
  the drivers (chart and sentences), the next-best-action with the alternatives that do not
  lose money, and recent events; an id that is not found gets the ids like it and the
  segments to look through;
- ``/planner?budget=...&kind=count|money``: the budgeted plan (``POST /plan``'s, kept per
  engine, budget and costs in :class:`~lifecycle.serving.plans.Plans`) with the uplift run's
  offline evaluation, and its contacts as CSV (``/plan.csv``).

Amounts are written compact (``94.4K USD``) with the exact amount on hover; the CSV keeps
exact values. Pages shown before sign-in have neither the search nor a sign-out button.

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
import difflib
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
from lifecycle.models.policy import Budget, BudgetKind
from lifecycle.serving import charts, i18n
from lifecycle.serving.guard import RUNTIME, Runtime, client_address, forwarded_https
from lifecycle.serving.plans import EvaluationUnreadable, Plans, plan_csv
from lifecycle.serving.population import (
    FLOW_DAYS,
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
        self.plans = Plans()

    def population(self, engine: Any = None) -> Population | None:
        """Return the population of ``engine`` (default: the runtime's; None without a table)."""
        engine = engine if engine is not None else self.runtime.engine
        if engine is None or engine.lookup is None:
            return None
        if self._engine is not engine:
            self._population, self._engine = build_population(engine), engine
        return self._population

    def adopt(self, engine: Any, population: Population | None, error: str | None) -> None:
        """Take the population built for ``engine`` elsewhere (a reload's loading process)."""
        if population is not None:
            self._population, self._engine = population, engine
        self.error = error


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

    def render(
        request: Request, template: str, status: int = 200, engine: Any = None, **context: Any
    ) -> HTMLResponse:
        """Render ``template``; ``engine`` is the one the view answered from (default: current)."""
        lang = lang_of(request)
        engine = engine if engine is not None else runtime.engine
        html = templates.get_template(template).render(
            lang=lang,
            t=lambda key, **v: i18n.text(key, lang, **v),
            i18n=i18n,
            path=request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            quote=quote,
            auth=runtime.settings.api_key is not None,
            signed_in=signed_in(request),
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
        engine = population.engine  # one engine per view, swap or not
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
            [i18n.compact_money(v, engine.currency, lang) for v in segments["clv_at_risk"]],
            exact=[i18n.money(v, engine.currency, lang) for v in segments["clv_at_risk"]],
            title=i18n.text("clv_at_risk", lang),
        )
        drivers = population.churn_drivers
        driver_chart = charts.bar_chart(
            [i18n.feature_label(f, lang, engine.lifecycle) for f in drivers["feature"]],
            drivers["mean_abs"].tolist(),
            [i18n.number(v, lang, 1) for v in drivers["mean_abs"]],
            notes=[
                i18n.text("raises_in", lang, share=i18n.percent(s, lang))
                for s in drivers["raises_share"]
            ],
            title=i18n.text("churn_drivers", lang),
        )
        flow_days, flow = _flow_of(population, request.query_params.get("flow"))
        flow_chart = None
        if flow is not None:
            movers = flow[flow["stage"].isin(STAGES[:-1])]  # the last stage has no later one
            flow_chart = charts.bar_chart(
                [i18n.stage_name(s, lang) for s in movers["stage"]],
                movers["moved_on_share"].fillna(0).tolist(),
                [i18n.percent(v, lang) for v in movers["moved_on_share"]],
                notes=[
                    i18n.text("k_of_n", lang, k=i18n.number(k, lang), n=i18n.number(n, lang))
                    for k, n in zip(movers["moved_on"], movers["customers"], strict=True)
                ],
                title=i18n.text("flow_chart", lang, days=flow_days),
            )
        action_names = {a.id: a.names[lang] for a in engine.catalog.actions}
        return render(
            request,
            "overview.html",
            flow=flow,
            flow_days=flow_days,
            flow_periods=sorted(population.flows),
            flow_start=population.cutoff - pd.Timedelta(days=flow_days),
            flow_chart=flow_chart,
            stages=STAGES,
            engine=engine,
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
        engine = population.engine  # one engine per view, swap or not
        return render(
            request,
            "customers.html",
            engine=engine,
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
        engine = population.engine  # one engine per view, swap or not
        lookup = engine.lookup
        if lookup is None:  # build_population refuses an engine without one
            raise RuntimeError("the page's population has no lookup table")
        customer_id = request.query_params.get("id", "").strip()
        if not customer_id:
            return render(
                request,
                "customer.html",
                engine=engine,
                answer=None,
                customer_id="",
                segments=population.segments,
            )
        if customer_id not in lookup.index:
            # A search that finds nobody is an answer, not an error (the API says 404): it
            # offers the ids that look like the one typed and the segments to look through.
            return render(
                request,
                "customer.html",
                engine=engine,
                answer=None,
                customer_id=customer_id,
                suggestions=similar_ids(population.customers["customer_id"], customer_id),
                segments=population.segments,
            )
        request_ = PredictRequest(customer_id=customer_id, lang=lang, top_k=6)
        answer = engine.predict([request_])[0].model_dump()
        row = lookup.frame.iloc[lookup.index[customer_id]]
        charts_by_task = {}
        for task in TASK_ORDER:
            explanation = answer["explanations"].get(task)
            if not explanation:
                continue
            drivers = explanation["drivers"]
            charts_by_task[task] = charts.diverging_chart(
                [i18n.feature_label(d["feature"], lang, engine.lifecycle) for d in drivers],
                [d["contribution"] if d["points"] is None else d["points"] for d in drivers],
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
            engine=engine,
            answer=answer,
            customer_id=customer_id,
            charts_by_task=charts_by_task,
            task_order=[t for t in TASK_ORDER if t in charts_by_task],
            path_steps=_path(row, answer["stage"], lookup.cutoff, lang),
            events=engine.recent_events(customer_id) if engine.events_path else None,
            # an action expected to lose money is no alternative to offer
            alternatives=[
                a for a in answer["next_best_action"]["alternatives"] if a["expected_value"] >= 0
            ],
            currency=engine.currency,
            horizons=answer["horizons_days"],
        )

    def overview_data(request: Request) -> Response:
        population = data_gate(request)
        if isinstance(population, Response):
            return population
        return JSONResponse(overview_json(population))

    def _plan_args(request: Request, population: Population) -> tuple[Budget | None, str, str]:
        """Return the budget asked for (None when it is not one), its kind and as typed."""
        kind: BudgetKind = "money" if request.query_params.get("kind") == "money" else "count"
        typed = request.query_params.get("budget", "").strip()
        if not typed and kind == "count":  # the first visit: a tenth of the customers
            typed = str(max(1, round(len(population.customers) / 10)))
        try:
            return Budget(float(typed.replace(",", "")), kind), kind, typed
        except ValueError:
            return None, kind, typed

    def planner(request: Request) -> Response:
        population = gate(request)
        if isinstance(population, Response):
            return population
        lang = lang_of(request)
        engine = population.engine  # one engine per view, swap or not
        budget, kind, typed = _plan_args(request, population)
        result = None
        if budget is not None and budget.amount > 0:
            result = state.plans.plan(population, budget)
        try:
            evaluation = state.plans.evaluation(engine, runtime.settings.tracking_uri)
            unreadable = False
        except EvaluationUnreadable:  # logged; the plan is still worth showing
            evaluation, unreadable = None, True
        return render(
            request,
            "plan.html",
            status=200 if result is not None or not typed else 422,
            engine=engine,
            population=population,
            plan=result,
            kind=kind,
            typed=typed,
            action_names={a.id: a.names[lang] for a in engine.catalog.actions},
            currency=engine.currency,
            evaluation=evaluation,
            policies=(evaluation or {}).get("policies", []),
            evaluation_unreadable=unreadable,
            uplift=engine.uplift,
        )

    def plan_download(request: Request) -> Response:
        population = data_gate(request)
        if isinstance(population, Response):
            return population
        budget, kind, _ = _plan_args(request, population)
        if budget is None or budget.amount <= 0:
            return JSONResponse(
                {"error": "invalid_budget", "field": "budget", "message": "a budget above 0"},
                status_code=422,
            )
        result = state.plans.plan(population, budget)
        return Response(
            plan_csv(result, _cell),
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": f'attachment; filename="plan-{kind}-{budget.amount:g}.csv"'
            },
        )

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
            Route("/planner", planner),
            Route("/plan.csv", plan_download),
            Route("/signin", signin_form, methods=["GET"]),
            Route("/signin", signin, methods=["POST"]),
            Route("/signout", signout, methods=["POST"]),
            Route("/lang/{lang}", set_lang),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]
    )
    app.state.page = state
    return app


def _flow_of(population: Population, asked: str | None) -> tuple[int, pd.DataFrame | None]:
    """Return the stage flow's period (the one asked for when computed, else the default)."""
    periods = sorted(population.flows) or list(FLOW_DAYS)
    default = 90 if 90 in periods else periods[0]
    days = int(asked) if asked and asked.isdigit() and int(asked) in periods else default
    return days, population.flows.get(days)


def observed_churn(population: Population) -> dict[str, float]:
    """Return each segment's observed churn rate, for the segments where it is known."""
    rates = population.segments.set_index("segment")[OBSERVED_CHURN_COLUMN]
    return {str(k): float(v) for k, v in rates.dropna().items()}


def similar_ids(ids: pd.Series, typed: str, limit: int = 5) -> list[str]:
    """Return up to ``limit`` customer ids like ``typed``: containing it, then close in spelling.

    Examples
    --------
    >>> similar_ids(pd.Series(["C0000012", "C0000120", "X9"]), "000012")
    ['C0000012', 'C0000120']
    """
    wanted = typed.strip().casefold()
    if not wanted:
        return []
    folded = ids.astype(str).str.casefold()
    found = ids[folded.str.contains(wanted, regex=False)].astype(str).head(limit).tolist()
    if len(found) < limit and len(wanted) >= 3:
        # only ids of about the same length can be a typo away; difflib on those alone
        near = ids[(folded.str.len() - len(wanted)).abs() <= 2].astype(str)
        for match in difflib.get_close_matches(typed.strip(), near.tolist(), limit, 0.75):
            if match not in found:
                found.append(match)
    return found[:limit]


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
