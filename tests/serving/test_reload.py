"""A champion change reaches a running service: alias moves, reloads, swaps and refusals.

A copy of the trained world's MLflow store (real SQLite, real artifacts) gets a second
version of each model, registered from the same run; the tests move the ``champion`` alias
between the two (a promote, then a rollback), and to a version that does not fit.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from lifecycle.models.store import open_store, registered_names
from lifecycle.serving.candidate import CandidateError, load_candidate
from lifecycle.serving.engine import Engine
from lifecycle.serving.guard import Runtime
from lifecycle.serving.reload import Reloader, registry_versions
from lifecycle.serving.schemas import PredictRequest
from lifecycle.serving.settings import ServeSettings

from ..servers import BIN, free_port, running
from .conftest import World

KEY = "reload-test-key"


@dataclass(frozen=True)
class Store:
    """A private copy of the world's store with two versions of each model."""

    uri: str
    first: dict[str, str]
    second: dict[str, str]


def _copy_store(world: World, folder: Path) -> str:
    source = Path(world.tracking_uri.removeprefix("sqlite:///"))
    target = folder / "mlflow.db"
    # the backup API copies a WAL database consistently; artifacts stay where they are
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
    return f"sqlite:///{target}"


def move_alias(uri: str, versions: dict[str, str]) -> None:
    client = open_store(uri)
    for name, version in versions.items():
        client.set_registered_model_alias(name, "champion", version)


@pytest.fixture
def store(world: World, tmp_path: Path) -> Store:
    uri = _copy_store(world, tmp_path)
    client = open_store(uri)
    first, second = {}, {}
    for name in registered_names().values():
        current = client.get_model_version_by_alias(name, "champion")
        again = client.create_model_version(name, current.source, run_id=current.run_id)
        first[name], second[name] = str(current.version), str(again.version)
    return Store(uri, first, second)


def served(runtime: Runtime) -> dict[str, str]:
    return {n: v for n, v in runtime.engine.versions.items() if n in registered_names().values()}


def wait_for(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def a_customer(engine: Engine) -> str:
    assert engine.lookup is not None
    return next(iter(engine.lookup.index))


@pytest.fixture
def loaded(store: Store, world: World) -> Iterator[tuple[Runtime, Reloader]]:
    settings = ServeSettings(tracking_uri=store.uri, lookup=world.lookup, reload_seconds=0)
    runtime = Runtime(settings)
    reloader = Reloader(runtime)
    versions = registry_versions(settings)
    runtime.engine = Engine.from_settings(settings)
    reloader.started(runtime.engine, versions)
    yield runtime, reloader
    reloader.stop()


def test_a_call_answers_while_a_long_load_goes_on(store: Store, world: World) -> None:
    settings = ServeSettings(tracking_uri=store.uri, lookup=world.lookup, reload_seconds=0)
    runtime = Runtime(settings)

    def slow(given: ServeSettings) -> Engine:
        time.sleep(1.5)
        return Engine.from_settings(given)

    reloader = Reloader(runtime, load=slow)
    versions = registry_versions(settings)
    runtime.engine = Engine.from_settings(settings)
    reloader.started(runtime.engine, versions)
    move_alias(store.uri, store.second)
    attempt = reloader.start()
    assert not attempt.wait(1.0)  # what POST /reload answers 202 for
    assert reloader.info().loading is True
    assert reloader.start() is attempt  # a second call joins the attempt running
    assert attempt.wait(60)
    info = reloader.info()
    assert info.loading is False and info.ok is True and info.swaps == 1
    assert served(runtime) == store.second


def test_the_loading_process_reports_why_a_set_cannot_load(tmp_path: Path) -> None:
    missing = ServeSettings(tracking_uri=f"sqlite:///{tmp_path}/none.db")
    with pytest.raises(CandidateError, match="no MLflow store"):
        load_candidate(missing, timeout=120)


def test_registry_versions_names_every_served_model(store: Store, world: World) -> None:
    versions = registry_versions(ServeSettings(tracking_uri=store.uri))
    assert {n: versions[n] for n in store.first} == store.first
    assert len(versions) == len(store.first) + 1  # and the uplift model
    assert len(registry_versions(ServeSettings(tracking_uri=store.uri, uplift=False))) == 3


def test_nothing_moved_is_a_no_op(loaded: tuple[Runtime, Reloader]) -> None:
    runtime, reloader = loaded
    engine = runtime.engine
    info = reloader.reload()
    assert runtime.engine is engine
    assert info.last_attempt is None and info.checked_at is not None and info.swaps == 0


def test_promote_and_rollback_swap_with_no_failed_request(
    loaded: tuple[Runtime, Reloader], store: Store
) -> None:
    runtime, reloader = loaded
    customer = a_customer(runtime.engine)
    old = weakref.ref(runtime.engine)
    answers: list[dict[str, str]] = []
    failures: list[BaseException] = []
    stop = threading.Event()

    def fire() -> None:
        while not stop.is_set():
            engine = runtime.engine  # what a handler does: read the reference once
            try:
                answer = engine.predict([PredictRequest(customer_id=customer, explain=False)])
                answers.append(answer[0].model_versions)
            except BaseException as exc:  # any failure fails the test
                failures.append(exc)

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(fire)
        wait_for(lambda: len(answers) > 0)
        move_alias(store.uri, store.second)  # promote
        promoted = reloader.reload()
        swapped_at = len(answers)
        wait_for(lambda: len(answers) > swapped_at + 8)
        stop.set()
    assert not failures
    assert promoted.ok and promoted.swaps == 1 and promoted.error is None
    assert served(runtime) == store.second
    # every answer names one whole set: the old or the new, never a mix
    sets = {tuple(sorted((n, v) for n, v in a.items() if n in store.first)) for a in answers}
    assert sets == {tuple(sorted(store.first.items())), tuple(sorted(store.second.items()))}
    info = runtime.engine.model_info().reload
    assert info is not None and info.serving_versions == runtime.engine.versions
    # the old set is released once nothing uses it
    gc.collect()
    assert old() is None

    move_alias(store.uri, store.first)  # rollback
    rolled = reloader.reload()
    assert rolled.ok and rolled.swaps == 2 and served(runtime) == store.first


def test_a_promote_half_way_is_not_loaded(loaded: tuple[Runtime, Reloader], store: Store) -> None:
    """A check between two of a promote's alias moves waits until the reads agree."""
    runtime, reloader = loaded
    names = list(store.second)
    move_alias(store.uri, {names[0]: store.second[names[0]]})  # the promote has begun
    rest = {n: store.second[n] for n in names[1:]}
    later = threading.Timer(0.1, move_alias, args=(store.uri, rest))
    later.start()
    info = reloader.reload(poll=True)
    later.join()
    assert info.swaps == 1 and served(runtime) == store.second


def test_a_failing_candidate_leaves_the_old_set_serving(
    loaded: tuple[Runtime, Reloader], store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    runtime, reloader = loaded
    engine = runtime.engine
    client = open_store(store.uri)
    names = registered_names()
    # a "churn" version whose files hold the next-stage model: its record does not fit
    wrong = client.get_model_version(names["next_stage"], store.first[names["next_stage"]])
    bad = client.create_model_version(names["churn"], wrong.source, run_id=wrong.run_id)
    move_alias(store.uri, {names["churn"]: str(bad.version)})
    with caplog.at_level(logging.INFO, logger="lifecycle.serving"):
        info = reloader.reload()
    assert runtime.engine is engine
    assert info.ok is False and "is not a churn model" in (info.error or "")
    assert info.candidate_versions is not None
    assert info.candidate_versions[names["churn"]] == str(bad.version)
    assert info.serving_versions == engine.versions
    shown = engine.model_info().reload
    assert shown is not None and shown.ok is False and shown.error == info.error
    failed = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(failed) == 1 and "\n" not in failed[0].getMessage()
    assert a_customer(engine) not in failed[0].getMessage()
    # the poll does not retry the same failed set; a move away from it is loaded
    assert reloader.reload(poll=True).last_attempt == info.last_attempt
    move_alias(store.uri, store.second)
    fixed = reloader.reload(poll=True)
    assert fixed.ok and served(runtime) == store.second


def test_missing_artifacts_leave_the_old_set_serving(
    loaded: tuple[Runtime, Reloader], store: Store
) -> None:
    runtime, reloader = loaded
    engine = runtime.engine
    client = open_store(store.uri)
    name = registered_names()["clv"]
    current = client.get_model_version(name, store.first[name])
    gone = client.create_model_version(name, "file:///nowhere/clv-model", run_id=current.run_id)
    move_alias(store.uri, {name: str(gone.version)})
    info = reloader.reload()
    assert info.ok is False and info.error and runtime.engine is engine
    assert engine.predict([PredictRequest(customer_id=a_customer(engine))])[0].model_versions


@pytest.mark.slow
def test_real_service_reloads_on_call_and_by_poll(
    store: Store, world: World, tmp_path: Path
) -> None:
    """`lifecycle serve`: /reload needs the key, swaps under load; the poll notices a rollback."""
    import os

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LIFECYCLE_", "BENTOML_"))}
    env |= {"LIFECYCLE_API_KEY": KEY, "LIFECYCLE_RELOAD_SECONDS": "2"}
    # the load under test is the swap, not its priority: a busy test machine (four clients
    # here) would leave a niced loading process little CPU (make bench-reliability measures it)
    env["LIFECYCLE_RELOAD_NICENESS"] = "0"
    args = [str(BIN / "lifecycle"), "serve", "--lookup", str(world.lookup), "--port", str(port)]
    args += ["--tracking-uri", store.uri]
    auth = {"X-API-Key": KEY}
    with running(args, env, port, tmp_path / "serve.log") as url:
        assert httpx.post(f"{url}/reload").status_code == 401
        unchanged = httpx.post(f"{url}/reload", headers=auth, timeout=60)
        assert unchanged.status_code == 200 and unchanged.json()["swaps"] == 0
        customer = a_customer_of(world)
        statuses: list[int] = []
        seen: list[dict[str, str]] = []
        stop = threading.Event()

        def fire() -> None:
            with httpx.Client(base_url=url, headers=auth, timeout=30) as http:
                while not stop.is_set():
                    answer = http.post("/predict", json={"customer_id": customer})
                    statuses.append(answer.status_code)
                    if answer.status_code == 200:
                        seen.append(answer.json()["model_versions"])

        with ThreadPoolExecutor(4) as pool:
            try:
                for _ in range(4):
                    pool.submit(fire)
                time.sleep(1)
                move_alias(store.uri, store.second)
                status, reloaded = reload_call(url, auth)
                assert status == 200, reloaded
                assert {n: reloaded["serving_versions"][n] for n in store.second} == store.second
                moved = time.monotonic()
                move_alias(store.uri, store.first)  # the rollback, noticed by the poll
                while time.monotonic() - moved < 90:
                    if seen and all(seen[-1][n] == v for n, v in store.first.items()):
                        break
                    time.sleep(0.2)
                time.sleep(0.5)
            finally:
                stop.set()  # else a failed assertion leaves the pool waiting forever
        assert statuses and set(statuses) == {200}
        assert all(seen[-1][n] == v for n, v in store.first.items()), "rollback never served"
        assert any(all(s[n] == v for n, v in store.second.items()) for s in seen)
        info = httpx.get(f"{url}/model_info", headers=auth).json()["reload"]
        assert info["ok"] is True and info["swaps"] == 2 and info["poll_seconds"] == 2
        # a set that fails its checks: 409 on /reload, the old set still answers
        client = open_store(store.uri)
        names = registered_names()
        wrong = client.get_model_version(names["next_stage"], store.first[names["next_stage"]])
        bad = client.create_model_version(names["churn"], wrong.source, run_id=wrong.run_id)
        move_alias(store.uri, {names["churn"]: str(bad.version)})
        status, refused = reload_call(url, auth)
        assert status == 409
        assert "is not a churn model" in refused.get("message", refused.get("error"))
        answer = httpx.post(f"{url}/predict", headers=auth, json={"customer_id": customer})
        assert answer.status_code == 200
        assert answer.json()["model_versions"][names["churn"]] == store.first[names["churn"]]
        info = httpx.get(f"{url}/model_info", headers=auth).json()["reload"]
        assert info["ok"] is False and info["candidate_versions"][names["churn"]] == str(
            bad.version
        )
    log = (tmp_path / "serve.log").read_text()
    # the poll (every 2 s) may have tried the bad set before the call did: one line each
    assert 1 <= log.count("reload of ") <= 2 and KEY not in log and customer not in log


def reload_call(url: str, auth: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST /reload; when it answers 202 (still loading), wait until /model_info says it ended.

    Returns the status the call would have had (200 or 409) and the answer, or the final
    ``reload`` of /model_info after a 202.
    """
    answer = httpx.post(f"{url}/reload", headers=auth, json={}, timeout=60)
    if answer.status_code != 202:
        return answer.status_code, answer.json()
    assert answer.json()["loading"] is True
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info = httpx.get(f"{url}/model_info", headers=auth).json()["reload"]
        if not info["loading"]:
            return (200 if info["ok"] else 409), info
        time.sleep(0.2)
    raise AssertionError("the reload never ended")


def a_customer_of(world: World) -> Any:
    import pandas as pd

    return str(pd.read_parquet(world.lookup, columns=["customer_id"])["customer_id"].iloc[0])
