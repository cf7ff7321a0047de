"""The ``lifecycle`` command line: one Typer app, a subcommand per job.

The app is assembled here from one module per group of commands:

- :mod:`lifecycle.cli.data`: ``simulate``, ``validate``, ``features``, ``stages``, ``rfm``,
  ``fetch-data``;
- :mod:`lifecycle.cli.check`: ``check`` (what a log can support, before training);
- :mod:`lifecycle.cli.train`: ``train``, ``evaluate``, ``score``;
- :mod:`lifecycle.cli.registry`: ``promote``, ``rollback``;
- :mod:`lifecycle.cli.uplift`: ``uplift``;
- :mod:`lifecycle.cli.serve`: ``serve``.

Every command parses its options (defined once, in :mod:`lifecycle.cli.options`), calls a
library function and prints (:mod:`lifecycle.cli.output`); it fails through
:func:`lifecycle.cli.options.fail` with exit code 1 (the work failed) or 2 (bad usage, or
something needed is missing). Heavy libraries are imported inside the commands, so
``lifecycle --help`` stays fast. Progress goes to standard error; the last line on standard
output is a one-line summary, or with ``--json`` one JSON object (counts as integers).
"""

from __future__ import annotations

import typer

from lifecycle.cli import check, data, plan, registry, serve, train, uplift

__all__ = ["app", "main"]

app = typer.Typer(
    name="lifecycle",
    help=(
        "Customer lifecycle intelligence: turn a customer event log into stages, features, "
        "RFM segments and predictions (next stage, churn risk, CLV with an interval).\n\n"
        "Typical first run: `lifecycle simulate --customers 20000 --out data/sim`, "
        "`lifecycle train --events data/sim/events.parquet --trials 5`, `lifecycle promote`, "
        "then `lifecycle score --events data/sim/events.parquet --out scores.parquet`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

for _name, _command in (
    ("simulate", data.simulate),
    ("validate", data.validate),
    ("features", data.features),
    ("stages", data.stages),
    ("rfm", data.rfm),
    ("fetch-data", data.fetch_data),
    ("check", check.check),
    ("train", train.train),
    ("evaluate", train.evaluate),
    ("score", train.score),
    ("promote", registry.promote),
    ("rollback", registry.rollback),
    ("uplift", uplift.uplift),
    ("plan", plan.plan),
    ("serve", serve.serve),
):
    app.command(_name)(_command)
del _name, _command


def main() -> None:
    """Run the ``lifecycle`` command line (the console script; ``python -m lifecycle.cli``)."""
    app()
