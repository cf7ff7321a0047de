"""The BentoML prediction service: ``bentoml serve`` from the project root, or ``lifecycle serve``.

A built Bento serves from any folder: relative paths in the settings are read from the folder the
server was started in (:data:`lifecycle.serving.settings.LAUNCH_DIR`), and it listens on every
interface, as BentoML services do, so a container of it can be reached.

Endpoints (JSON; schemas in :mod:`lifecycle.serving.schemas`, published at ``/docs.json``):

- ``POST /predict``: one customer by ``customer_id``, raw ``events`` or a ``features`` row;
- ``POST /predict_batch``: up to ``LIFECYCLE_MAX_BATCH`` items, the same answers as one by one;
- ``POST /model_info`` (and ``GET /model_info``): served versions, training period, headline
  metrics, the feature list, the limits and the last reload;
- ``POST /plan``: a budgeted next-best-action plan over the lookup table's customers (per
  action, the totals, and the first contacts; the page's ``/planner`` shows the same plan);
- ``POST /reload``: serve the versions holding the alias now (:mod:`lifecycle.serving.reload`),
  as the poll every ``LIFECYCLE_RELOAD_SECONDS`` does;
- BentoML's ``/livez``, ``/readyz`` and ``/metrics``.

The worker loads the models in a background thread: ``/readyz`` answers 503 until the champion
models are loaded, their signatures checked against the feature list, the lookup table loaded
(or built from events) and one full prediction made. Latency settings, measured on a 2-core
machine (see docs/serving.md): handlers are ``async`` (no thread hand-off per request; the model
calls take milliseconds and one worker per core keeps the cores busy), the traffic timeout is
short, and after warm-up the garbage collector freezes the start-up heap so a collection never
walks the loaded libraries.
"""

from __future__ import annotations

import functools
import gc
import logging
import os
import threading
from pathlib import Path
from typing import Any

import anyio
import attrs
import bentoml
from pydantic import BaseModel
from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response

from lifecycle.serving.candidate import Candidate
from lifecycle.serving.engine import BATCH_ROWS, Engine
from lifecycle.serving.errors import RequestError
from lifecycle.serving.guard import RUNTIME, STATE_KEY, WORK_KEY, RequestGuard
from lifecycle.serving.page import create_app
from lifecycle.serving.reload import CALL_WAIT_SECONDS, Reloader, registry_versions
from lifecycle.serving.schemas import (
    BatchRequest,
    BatchResponse,
    ModelInfo,
    ModelInfoRequest,
    PlanRequest,
    PlanResponse,
    PredictRequest,
    PredictResponse,
    ReloadInfo,
    ReloadRequest,
)
from lifecycle.serving.settings import LAUNCH_DIR, missing_files, resolve_paths

log = logging.getLogger("lifecycle.serving")


def _json(payload: BaseModel | dict[str, Any], status: int = 200) -> Response:
    # The answers are the schemas' pydantic models (PredictResponse, BatchResponse, ModelInfo,
    # which output_spec publishes), written by pydantic-core in one call: BentoML's own
    # serialisation of a returned model (model_dump_json into a streamed response) served
    # fewer requests per second at 16 clients in the quick serving benchmark.
    return Response(to_json(payload), status_code=status, media_type="application/json")


def _error(exc: RequestError, context: bentoml.Context) -> Response:
    # BentoML sets the status of an API with a context parameter from the context.
    context.response.status_code = exc.status
    return _json(exc.body(), exc.status)


async def _run(
    engine: Engine, items: list[PredictRequest], *, batch: bool, request: Request | None = None
) -> list[PredictResponse]:
    """Answer on the event loop when quick; in a worker thread when it may take a while.

    One customer from the lookup table or a feature row takes a few milliseconds: a thread
    hand-off would cost more than it frees. Raw events (a DuckDB query per cutoff) and large
    batches go to a thread, so health checks and other requests are not held up meanwhile.
    """
    work = request.scope.get("state", {}).get(WORK_KEY) if request is not None else None
    check = work.check if work is not None else None  # stops the work: timeout, client gone
    slow = len(items) >= BATCH_ROWS or any(item.events is not None for item in items)
    if slow:
        # abandon_on_cancel: a request cancelled by the traffic timeout answers at once; its
        # thread stops at its next check, as the guard stops the work when the request ends.
        return await anyio.to_thread.run_sync(
            functools.partial(engine.predict, items, batch=batch, check=check),
            abandon_on_cancel=True,
        )
    return engine.predict(items, batch=batch, check=check)


def _load(runtime: Any, reloader: Reloader) -> None:
    """Load, check and warm the engine; record the failure instead of raising.

    Then the reloader watches the alias (every ``LIFECYCLE_RELOAD_SECONDS``).
    """
    try:
        # Relative paths are the user's: read them from where the server was started, not
        # from the Bento's folder BentoML moved the worker to.
        base = Path(os.environ.get(LAUNCH_DIR) or Path.cwd())
        problem = missing_files(runtime.settings, base)
        if problem:
            raise FileNotFoundError(problem)
        settings = runtime.settings = resolve_paths(runtime.settings, base)
        versions = registry_versions(settings)  # read first: a move while loading is noticed
        engine = Engine.from_settings(settings)
        engine.warm_up()
    except Exception as exc:  # any failure keeps the worker not-ready, with the reason
        runtime.failure = f"the service could not start: {exc}"
        log.error("%s", runtime.failure)
        return
    finally:
        runtime.loading.set()
    if engine.lookup is not None:
        try:  # the page's tables, ready with the service; a failure here spares the API
            PAGE.state.page.population(engine)
        except Exception as exc:
            PAGE.state.page.error = str(exc)
            log.error("the marketer page's tables could not be built: %s", exc)
    runtime.engine = engine
    reloader.started(engine, versions)
    reloader.start_polling()
    _freeze_heap()
    log.info(
        "serving %s; lookup table: %s customers",
        ", ".join(f"{n} v{v}" for n, v in engine.versions.items()),
        len(engine.lookup.index) if engine.lookup else 0,
    )


PACKAGE = "customer-lifecycle"
TITLE = "Customer lifecycle API"
DESCRIPTION = """Customer lifecycle predictions for one customer (`POST /predict`) or a batch
(`POST /predict_batch`): lifecycle stage, next-stage probability, churn risk, CLV with its
interval, RFM segment, explanations in plain sentences and the next-best action. `POST /plan`
plans next-best actions under a budget for the lookup table's customers.

The version above is the service's code. The models served are the MLflow registry's versions
holding the alias; a move of the alias is loaded, checked and swapped in without a restart
(checked every `LIFECYCLE_RELOAD_SECONDS`, and on `POST /reload`). Every answer names the
versions that made it in `model_versions`, and `GET /model_info` lists them with their training
period, metrics and features, and under `reload` the last swap or failed attempt.

Errors are JSON `{"error": code, "message": sentence, "fields": [{"field", "message"}]}`.
When the service has an API key, send `Authorization: Bearer <key>` or `X-API-Key: <key>`."""


def service_version() -> str:
    """Return the project's version: the installed package's, else the Bento's pyproject.toml.

    A Bento installs the project's dependencies, not the project: it carries its pyproject.toml
    (bentofile.yaml) beside the code instead.

    Examples
    --------
    >>> service_version().count(".") >= 1
    True
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        if not pyproject.is_file():
            return "unknown"
        return str(tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"])


class DescribedService(bentoml.Service[Any]):
    """BentoML's service class, publishing this API's title, version and description.

    BentoML writes its own boilerplate (title = the service name, version "None" outside a
    built Bento, a README about BentoML) into the OpenAPI document at ``/docs.json``.
    """

    @property
    def openapi_spec(self) -> Any:
        """The API's exact OpenAPI document (:mod:`lifecycle.serving.contract`), its ``info``."""
        import yaml

        from lifecycle.serving.contract import openapi_document

        spec = super().openapi_spec
        info = attrs.evolve(
            spec.info,
            title=TITLE,
            version=service_version(),
            description=DESCRIPTION,
            contact=None,
        )
        base = attrs.evolve(spec, info=info).asdict()
        api_key = RUNTIME.settings.api_key is not None
        # `bentoml build` writes the document into the Bento as YAML.
        yaml.add_representer(
            OpenAPIDocument, lambda dumper, doc: dumper.represent_dict(doc.asdict())
        )
        return OpenAPIDocument(openapi_document(base, api_key=api_key, actions=_costed_actions()))


def _costed_actions() -> list[str] | None:
    """Return the actions whose cost ``POST /plan`` takes (None: the catalog is unreadable)."""
    from lifecycle.models.nba import load_catalog
    from lifecycle.serving.plans import costed_actions

    engine = RUNTIME.engine
    try:
        catalog = engine.catalog if engine is not None else load_catalog(RUNTIME.settings.actions)
    except (OSError, ValueError) as exc:
        log.warning("the API document lists no action ids for POST /plan: %s", exc)
        return None
    return costed_actions(catalog)


class OpenAPIDocument:
    """The document served at ``/docs.json``: BentoML serves what ``asdict`` returns.

    BentoML's own specification classes cannot hold OpenAPI 3.1 schemas or security schemes.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def asdict(self) -> dict[str, Any]:
        """Return the document as JSON-ready data."""
        return self.document


@bentoml.service(
    name="lifecycle",
    service_class=DescribedService,
    workers=1,
    traffic={"timeout": 10},
    # BentoML's default host: every interface, so a containerized Bento can be reached through
    # `docker run -p`. `lifecycle serve` listens on 127.0.0.1 unless told otherwise (--host).
    http={"host": "0.0.0.0", "port": 3000},  # noqa: S104
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": ["/predict", "/predict_batch", "/model_info", "/plan"]},
)
class LifecycleService:
    """Stage, next-stage probability, churn risk, CLV, segment, explanations and next action."""

    @bentoml.on_deployment
    def _record_launch_dir() -> None:
        """Remember where the server was started, before its workers start in the Bento's folder.

        BentoML runs this once in the server's main process, back in the folder it was started
        from; the workers inherit the variable. A value already set (by the user) is kept.
        """
        os.environ.setdefault(LAUNCH_DIR, str(Path.cwd()))

    def __init__(self) -> None:
        # The worker's state lives on the runtime the guard and the page were given; its
        # settings are read from the LIFECYCLE_* environment here, at start-up, never on import.
        self.runtime = RUNTIME
        settings = self.runtime.settings
        log.info("loading the models holding %r", settings.alias)
        self.runtime.engine, self.runtime.failure = None, None
        self.runtime.loading.clear()
        self.reloader = Reloader(self.runtime, prepare=_prepare_page, swapped=_freeze_heap)
        threading.Thread(target=_load, args=(self.runtime, self.reloader), daemon=True).start()

    def __is_ready__(self) -> bool:
        """Ready once the engine is loaded, checked and warmed up."""
        return self.runtime.engine is not None

    def __is_alive__(self) -> bool:
        """Alive unless start-up failed (a restart is then the way out)."""
        return self.runtime.failure is None

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(self, context: bentoml.Context, **fields: Any) -> Response:
        """Predict for one customer: given by id, by raw events, or by a feature row."""
        request = _validated(context.request, PredictRequest, fields)
        try:
            engine = self.runtime.engine
            answer = (await _run(engine, [request], batch=False, request=context.request))[0]
        except RequestError as exc:
            return _error(exc, context)
        return _json(answer)

    @bentoml.api(route="/predict_batch", input_spec=BatchRequest, output_spec=BatchResponse)
    async def predict_batch(self, context: bentoml.Context, **fields: Any) -> Response:
        """Predict for several customers at once; each item is a /predict request."""
        request = _validated(context.request, BatchRequest, fields)
        engine = self.runtime.engine
        try:
            answers = await _run(engine, request.items, batch=True, request=context.request)
        except RequestError as exc:
            return _error(exc, context)
        return _json(BatchResponse(items=answers, model_versions=engine.versions))

    @bentoml.api(route="/reload", input_spec=ReloadRequest, output_spec=ReloadInfo)
    async def reload(self, context: bentoml.Context, **fields: Any) -> Response:
        """Serve the versions holding the alias now: load, check, warm up, then swap.

        Nothing changes when no version moved. When the new set fails its checks the old
        one keeps serving and the answer is 409 ``reload_failed`` with the reason (also in
        ``/model_info`` under ``reload``). A load that takes longer than a few seconds
        answers 202 with ``loading`` true and goes on; ``/model_info`` tells how it ended.
        Needs the API key when the service has one.
        """
        _validated(context.request, ReloadRequest, fields)
        attempt = self.reloader.start()
        # a load longer than the wait answers 202; it goes on and /model_info tells how it ended
        ended = await anyio.to_thread.run_sync(
            attempt.wait, CALL_WAIT_SECONDS, abandon_on_cancel=True
        )
        info = self.reloader.info()
        if not ended:
            context.response.status_code = 202
            return _json(info, 202)
        if info.ok is False and info.last_attempt == info.checked_at:  # failed just now
            candidate = ", ".join(f"{n} v{v}" for n, v in (info.candidate_versions or {}).items())
            return _error(
                RequestError(
                    409,
                    "reload_failed",
                    f"the versions holding the alias ({candidate or 'unknown'}) were not "
                    f"loaded: {info.error}; still serving the previous set",
                    [],
                ),
                context,
            )
        return _json(info)

    @bentoml.api(route="/plan", input_spec=PlanRequest, output_spec=PlanResponse)
    async def plan(self, context: bentoml.Context, **fields: Any) -> Response:
        """Plan next-best actions under a budget for the lookup table's customers.

        The plan the page's ``/planner`` shows, from the same population (kept per engine,
        budget and costs): per action, customers, cost and expected incremental value with an
        interval, the totals, and the first ``contacts`` customers to contact.
        """
        from lifecycle.serving.plans import no_lookup_error, plan_request

        request = _validated(context.request, PlanRequest, fields)
        engine = self.runtime.engine
        try:
            if engine.lookup is None:
                raise no_lookup_error()
            page = PAGE.state.page
            # a view's thread may be building the population: wait for it off the event loop
            population = await anyio.to_thread.run_sync(page.population, engine)
            answer = await anyio.to_thread.run_sync(plan_request, population, page.plans, request)
        except RequestError as exc:
            return _error(exc, context)
        return _json(answer)

    @bentoml.api(route="/model_info", input_spec=ModelInfoRequest, output_spec=ModelInfo)
    async def model_info(self) -> Response:
        """Describe the served versions, training period, headline metrics and features."""
        return _json(self.runtime.engine.model_info())


def _validated(request: Request, model: type[Any], fields: dict[str, Any]) -> Any:
    """Return the request the guard validated, else one rebuilt from BentoML's fields."""
    parsed = request.scope.get("state", {}).get(STATE_KEY)
    return parsed if isinstance(parsed, model) else model.model_validate(fields)


def _freeze_heap() -> None:
    """Freeze what start-up (or a swap) allocated: libraries, models, lookup table.

    Later collections only walk objects created by requests, which keeps GC pauses out of the
    tail latency. A replaced engine is still freed: by reference counting, when the last
    request using it ends (memory stays flat over repeated swaps; docs/serving.md).
    """
    gc.collect()
    gc.freeze()


def _prepare_page(candidate: Candidate) -> None:
    """Give the marketer page the tables of a reloaded set before it is served.

    The loading process built them (a failure there is recorded, not raised: the API does not
    need them); a set loaded in this process has them built here.
    """
    page = PAGE.state.page
    if candidate.population is not None or candidate.page_error is not None:
        page.adopt(candidate.engine, candidate.population, candidate.page_error)
        return
    try:
        page.population(candidate.engine)
    except Exception as exc:
        page.error = str(exc)
        raise
    page.error = None


PAGE = create_app(RUNTIME)
"""The marketer page (serving/page.py), mounted at / (BentoML's routes match first)."""

LifecycleService.add_asgi_middleware(RequestGuard)  # type: ignore[attr-defined]
LifecycleService.mount_asgi_app(PAGE, path="/")  # type: ignore[attr-defined]
