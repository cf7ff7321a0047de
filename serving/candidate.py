"""Load a candidate set of models in a child process, so that serving does not slow down.

Loading a new set (reading the registry, downloading and unpickling the models, checking them
against the lookup table, one warm-up prediction, the marketer page's population: one to
several seconds of CPU) in the serving process would hold the interpreter lock the request
threads need: on two cores the 99th percentile latency rose 7x during a swap, and running the
load in a thread at a lower CPU priority made it worse (the thread kept the lock while the
operating system held it back). A child process has its own interpreter lock and runs at a
low CPU priority (``LIFECYCLE_RELOAD_NICENESS``, default 10), so the requests keep the cores;
the parent only unpickles the finished engine and population (milliseconds: the models'
trees are parsed in LightGBM's C code) and warms it up once more.

The child is ``python -m lifecycle.serving.candidate IN OUT NICE``: ``IN`` holds the pickled
:class:`~lifecycle.serving.settings.ServeSettings`, ``OUT`` receives the pickled
:class:`Candidate` or the one-line reason it failed. Both files live in a private temporary
folder and are read only by this module.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

log = logging.getLogger("lifecycle.serving")

if TYPE_CHECKING:
    from lifecycle.serving.engine import Engine
    from lifecycle.serving.population import Population
    from lifecycle.serving.settings import ServeSettings


class CandidateError(RuntimeError):
    """The candidate set could not be loaded or checked; the message is one line saying why."""


@dataclass
class Candidate:
    """A loaded, checked and warmed set: the engine, and the page's population for it."""

    engine: Engine
    population: Population | None
    page_error: str | None
    """Why the population could not be built (the API does not need it), else None."""


def load_candidate(settings: ServeSettings, *, timeout: float, niceness: int = 10) -> Candidate:
    """Load, check and warm the set ``settings`` names in a child process; return it.

    Parameters
    ----------
    settings
        The service's settings, paths resolved (the child may run in another folder).
    timeout
        Seconds the child may take; it is killed after that and the load fails.
    niceness
        The child's CPU priority (``nice``; 19: only idle CPU).

    Returns
    -------
    Candidate
        The engine (warmed up once more in this process) and its population.

    Raises
    ------
    CandidateError
        With the child's one-line reason, or a time-out or crash.
    """
    with tempfile.TemporaryDirectory(prefix="lifecycle-candidate-") as folder:
        given, answer = Path(folder) / "settings.pickle", Path(folder) / "candidate.pickle"
        given.write_bytes(pickle.dumps(settings, protocol=pickle.HIGHEST_PROTOCOL))
        env = dict(os.environ)
        # the child imports exactly what this process imports (a Bento's folder included)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            done = subprocess.run(  # noqa: S603  # this interpreter, our own module
                [
                    sys.executable,
                    "-m",
                    "lifecycle.serving.candidate",
                    str(given),
                    str(answer),
                    str(niceness),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise CandidateError(f"loading the new set took more than {timeout:g} s") from exc
        if not answer.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise CandidateError(
                f"the loading process ended with code {done.returncode}"
                + (f": {tail[-1]}" if tail else "")
            )
        loaded: Any = pickle.loads(answer.read_bytes())  # noqa: S301  # our own child's file
    if isinstance(loaded, str):
        log.debug("the loading process's standard error:\n%s", done.stderr)
        raise CandidateError(loaded)
    candidate: Candidate = loaded
    candidate.engine.warm_up()
    return candidate


def build(settings: ServeSettings) -> Candidate:
    """Load, check and warm the engine; build its population (what the child does)."""
    from lifecycle.serving.engine import Engine
    from lifecycle.serving.population import build_population

    engine = Engine.from_settings(settings)
    engine.warm_up()
    population, page_error = None, None
    if engine.lookup is not None:
        try:
            population = build_population(engine)
        except Exception as exc:  # the page's tables; the API does not depend on them
            page_error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    return Candidate(engine, population, page_error)


def main(argv: list[str] | None = None) -> int:
    """Run the child: read the settings, build the candidate, write it (or why it failed)."""
    given, answer = (Path(a) for a in (argv if argv is not None else sys.argv[1:])[:2])
    settings = pickle.loads(given.read_bytes())  # noqa: S301  # our own parent's file
    try:
        result: Candidate | str = build(settings)
    except Exception as exc:  # the reason goes back to the parent, one line
        traceback.print_exc()  # the whole story on the child's standard error (the debug log)
        text = str(exc).strip()
        result = text.splitlines()[0] if text else type(exc).__name__
    part = answer.with_name(answer.name + ".part")
    part.write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    part.replace(answer)  # the parent reads a whole file or none
    return 0


if __name__ == "__main__":
    os.nice(int(sys.argv[3]))  # before the heavy imports: all of the child's work is niced
    # run the module's own copy, so that pickle names lifecycle.serving.candidate, not __main__
    from lifecycle.serving.candidate import main as child_main

    sys.exit(child_main())
