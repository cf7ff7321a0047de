"""A champion change reaches a running worker without a failed request.

The worker reads which versions hold the alias (every ``LIFECYCLE_RELOAD_SECONDS``, and on
``POST /reload``). When they moved, it loads and checks the new set beside the one it serves,
exactly as at start-up (:meth:`Engine.from_settings`: signatures, records, one project, the
lookup table), makes one full prediction with it and builds the marketer page's population,
all in a child process at a low CPU priority (:mod:`lifecycle.serving.candidate`: the
requests keep the cores and the interpreter lock), then switches with one reference
assignment (``runtime.engine = new``). A request reads that reference once and keeps the
engine it started with, so requests in flight finish on the old set and every answer names
the versions that made it; the old set is freed when the last of them finishes. A new set that
fails its checks is never served: the old one keeps serving, the failure is logged (one line)
and shown in ``/model_info`` under ``reload``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lifecycle.serving.candidate import Candidate, load_candidate
from lifecycle.serving.engine import Engine
from lifecycle.serving.schemas import ReloadInfo
from lifecycle.serving.settings import ServeSettings

log = logging.getLogger("lifecycle.serving")

ERROR_CHARS = 300
"""Longest failure reason kept and shown (the first line of the error, cut here)."""

SETTLE_SECONDS = 0.5
"""A moved alias is read again after this long and loaded only once two reads agree.

The registry moves one model's alias at a time: a poll between two of a promote's moves would
otherwise load a set that was never promoted (new churn, old CLV).
"""
SETTLE_READS = 5
"""Most reads while the aliases keep moving; then the attempt waits for the next check."""
CALL_WAIT_SECONDS = 6.0
"""``POST /reload`` waits this long for its attempt (under the 10 s traffic timeout); a longer
load answers 202 and goes on, and ``/model_info`` says when it ended (``reload.loading``)."""


def registry_versions(settings: ServeSettings) -> dict[str, str]:
    """Return the version of each served registered model that holds the alias now.

    Parameters
    ----------
    settings
        The service's settings (store, alias, project, model names, uplift).

    Returns
    -------
    dict
        Registered name -> version, for the models a service with ``settings`` loads (the
        uplift model only when it is used and one holds the alias). A name without a version
        holding the alias is left out: loading would then fail, with the reason.

    Examples
    --------
    >>> registry_versions(ServeSettings(tracking_uri="sqlite:////nowhere/m.db"))
    Traceback (most recent call last):
    ...
    lifecycle.models.store.StoreError: no MLflow store at /nowhere/m.db; ...
    """
    from lifecycle.models.store import alias_version, open_store, uplift_name

    client = open_store(settings.tracking_uri, set_global=False)  # a poll reads only
    names = list(settings.registered_names().values())
    if settings.uplift:
        names.append(uplift_name(settings.project))
    found = {name: alias_version(client, name, settings.alias) for name in names}
    return {name: version for name, version in found.items() if version is not None}


class Reloader:
    """Notices an alias move and swaps the worker's engine for the new set, or keeps the old.

    Parameters
    ----------
    runtime
        The worker's runtime: its ``settings`` (paths resolved) and ``engine`` (the one
        reference every request reads).
    load
        Loads and checks an engine for the settings in this process (tests); default: load
        it, and the page's population, in a child process
        (:func:`~lifecycle.serving.candidate.load_candidate`).
    prepare
        Called with the checked, warmed candidate before it is served (the marketer page
        adopts its population, or builds it); a failure there is logged and does not stop
        the swap.
    swapped
        Called after a swap (the service freezes the new set's heap, as after start-up).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> reloader = Reloader(SimpleNamespace(settings=ServeSettings(), engine=None))
    >>> reloader.info().ok is None
    True
    """

    def __init__(
        self,
        runtime: Any,
        *,
        load: Callable[[ServeSettings], Engine] | None = None,
        prepare: Callable[[Candidate], None] | None = None,
        swapped: Callable[[], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self._load = load
        self._prepare = prepare
        self._swapped = swapped
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._calls = threading.Lock()
        self._call: threading.Event | None = None
        """Set when the attempt a call started has ended."""
        self._loaded: dict[str, str] | None = None
        """Registry versions read before loading the engine being served."""
        self._failed: dict[str, str] | None = None
        """Registry versions of the last attempt that failed (the poll does not retry them)."""
        self._info = ReloadInfo(poll_seconds=0.0, serving_versions={})

    # ------------------------------------------------------------------ state

    def info(self) -> ReloadInfo:
        """Return what the last reload attempt did and what is served (for ``/model_info``)."""
        return self._info

    def _record(self, **changes: Any) -> None:
        # One new immutable object, assigned at once: readers never see half an update.
        self._info = self._info.model_copy(update=changes)

    def started(self, engine: Engine, versions: dict[str, str]) -> None:
        """Record the engine loaded at start-up and the registry versions read before loading it."""
        self._loaded = dict(versions)
        engine.reload_status = self.info
        self._record(
            poll_seconds=self.runtime.settings.reload_seconds,
            serving_versions=dict(engine.versions),
        )

    # ------------------------------------------------------------------ reloading

    def reload(self, *, poll: bool = False) -> ReloadInfo:
        """Serve the versions holding the alias now, if they moved and pass their checks.

        One attempt at a time (a second caller waits, then finds nothing to do). Reading the
        registry costs a few milliseconds; loading happens only when a version moved, and once
        two reads :data:`SETTLE_SECONDS` apart agree (a promote half-way is never loaded).

        Parameters
        ----------
        poll
            Called by the poll: a set that already failed is not tried again until the alias
            moves (``POST /reload`` tries it again, e.g. after its files were restored).

        Returns
        -------
        ReloadInfo
            ``ok`` False with ``error`` when the new set failed (the old one still serves).
        """
        with self._lock:
            try:
                wanted = registry_versions(self.runtime.settings)
            except Exception as exc:  # the store is unreachable: keep serving, say why
                return self._failure(f"the model store could not be read: {_line(exc)}", None)
            for _ in range(SETTLE_READS):
                if wanted == self._loaded or (poll and wanted == self._failed):
                    self._record(checked_at=_now())
                    return self._info
                time.sleep(SETTLE_SECONDS)
                try:
                    again = registry_versions(self.runtime.settings)
                except Exception as exc:
                    return self._failure(f"the model store could not be read: {_line(exc)}", None)
                if again == wanted:
                    return self._swap(wanted)
                wanted = again
            self._record(checked_at=_now())  # still moving: the next check loads where it stops
            return self._info

    def start(self) -> threading.Event:
        """Begin an attempt in its own thread, unless one started by a call still runs.

        ``POST /reload`` waits on the returned event for a few seconds and answers 202 when
        the load takes longer; the attempt goes on and ``/model_info`` tells how it ended.
        """
        with self._calls:
            if self._call is None or self._call.is_set():
                done = threading.Event()

                def attempt() -> None:
                    try:
                        self.reload()
                    except Exception as exc:  # never let the thread die silently
                        log.error("reload failed: %s", _line(exc))
                    finally:
                        done.set()

                threading.Thread(target=attempt, name="lifecycle-reload-call", daemon=True).start()
                self._call = done
            return self._call

    def _swap(self, wanted: dict[str, str]) -> ReloadInfo:
        started = time.perf_counter()
        self._record(loading=True)
        try:
            candidate = self._build()
        except Exception as exc:  # any failure keeps the old set serving
            return self._failure(_line(exc), wanted)
        engine = candidate.engine
        if self._prepare is not None:
            try:
                self._prepare(candidate)
            except Exception as exc:  # the page's tables; the API does not depend on them
                log.error("reload: the marketer page's tables could not be built: %s", _line(exc))
        engine.reload_status = self.info
        old = self.runtime.engine
        self.runtime.engine = engine  # the swap: requests read this reference once
        self._loaded, self._failed = wanted, None
        if self._swapped is not None:
            self._swapped()
        now = _now()
        self._record(
            last_attempt=now,
            checked_at=now,
            ok=True,
            error=None,
            serving_versions=dict(engine.versions),
            candidate_versions=dict(engine.versions),
            last_swap=now,
            swaps=self._info.swaps + 1,
            seconds=round(time.perf_counter() - started, 3),
            loading=False,
        )
        log.info(
            "reload: now serving %s (was %s), loaded and checked in %.1f s",
            _names(engine.versions),
            _names(old.versions) if old is not None else "nothing",
            time.perf_counter() - started,
        )
        return self._info

    def _build(self) -> Candidate:
        """Load, check and warm the new set (and its page population, out of process)."""
        settings = self.runtime.settings
        if self._load is None:
            return load_candidate(
                settings, timeout=settings.reload_timeout, niceness=settings.reload_niceness
            )
        engine = self._load(settings)
        engine.warm_up()
        return Candidate(engine, None, None)

    def _failure(self, reason: str, wanted: dict[str, str] | None) -> ReloadInfo:
        self._failed = wanted
        serving = self.runtime.engine.versions if self.runtime.engine is not None else {}
        log.error(
            "reload of %s failed; still serving %s: %s",
            _names(wanted) if wanted else "the registry",
            _names(serving),
            reason,
        )
        now = _now()
        self._record(
            last_attempt=now,
            checked_at=now,
            ok=False,
            error=reason,
            serving_versions=dict(serving),
            candidate_versions=wanted,
            seconds=None,
            loading=False,
        )
        return self._info

    # ------------------------------------------------------------------ polling

    def start_polling(self) -> None:
        """Check the registry every ``reload_seconds`` in a daemon thread (0: never)."""
        interval = self.runtime.settings.reload_seconds
        if interval <= 0 or self._thread is not None:
            return
        self._thread = threading.Thread(
            target=self._poll, args=(interval,), name="lifecycle-reload", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (at once when idle; a load in progress finishes first)."""
        self._stop.set()

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.reload(poll=True)
            except Exception as exc:  # never let the poll thread die
                log.error("reload poll failed: %s", _line(exc))


def _now() -> datetime:
    return datetime.now(UTC)


def _line(exc: BaseException) -> str:
    """Return the first line of an error, cut to :data:`ERROR_CHARS` (no traceback in the log)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:ERROR_CHARS]


def _names(versions: dict[str, str] | None) -> str:
    return ", ".join(f"{n} v{v}" for n, v in sorted((versions or {}).items())) or "nothing"
