"""The ``check`` command: what an event log can support, before any training.

It calls :func:`lifecycle.training.readiness.assess` (the same report ``lifecycle train`` prints
as its first step) and prints one screen: the log's profile, the learner, and per task whether it
can be trained and why not.
"""

from __future__ import annotations

import json

from lifecycle.cli.inputs import load_training_config, open_events
from lifecycle.cli.options import (
    EXIT_FAILED,
    EventsOpt,
    JsonOpt,
    MappingOpt,
    TableOpt,
    TrainingConfigOpt,
    fail,
)
from lifecycle.cli.output import out_console


def check(
    events: EventsOpt,
    config: TrainingConfigOpt = None,
    mapping: MappingOpt = None,
    table: TableOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Say, per task, whether this log can train it, and why not, in a few seconds.

    Reports the buyers, repeat buyers, priced purchases and sign-ups; per task (next stage,
    churn, CLV) the time-honest cutoffs, the eligible customers and each outcome at the
    validation and evaluation cutoffs, how far back the training cutoffs' recency reaches;
    and whether the hybrid learner's BTYD model can be fitted. `lifecycle train` prints the
    same report first and trains only the supported tasks. Exits 1 when no task is supported.
    """
    from lifecycle.training.readiness import assess

    cfg = load_training_config(config)
    data, _counts = open_events(events, mapping, table, cfg.lifecycle)
    report = assess(data, config=cfg)
    if as_json:
        print(json.dumps(report.to_dict(), default=str))
    else:
        console = out_console()
        colour = {"ready": "green", "weak": "yellow", "unsupported": "red"}
        for line in report.lines():
            task, _, status = line.partition(": ")
            if status in colour:  # a task's first line: colour its verdict
                line = f"[bold]{task}[/]: [{colour[status]}]{status}[/]"
            elif line.startswith("note: "):
                line = f"[yellow]note:[/] {line[6:]}"
            console.print(line, highlight=False, soft_wrap=True)
    if not report.supported():
        raise fail("this log supports none of the tasks asked for", EXIT_FAILED)
