"""The floor for the serving benchmark: the same model calls in a minimal ASGI app.

Starlette on uvicorn (one worker, no access log), loading the same champion models and lookup
table as the service, and doing only what any server must: parse the JSON, find the row, run
the three models with native Tree SHAP (LightGBM ``pred_contrib``) and send the numbers back.
No validation beyond a key lookup, no sentences, no next-best-action, no auth. Like the
service, a batch of ``BATCH_ROWS`` rows or more is computed in a worker thread (so concurrent
batches can use more than one core, as the service's do) and one customer on the event loop.

Usage: python benchmarks/serving_floor.py --port 3100 --lookup demo/scores.parquet
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import uvicorn
from pydantic_core import from_json, to_json
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lifecycle.serving.engine import BATCH_ROWS, Engine  # noqa: E402


def build_app(engine: Engine) -> Starlette:
    """Return the floor app over a loaded engine (its models and lookup table only)."""
    lookup = engine.lookup
    assert lookup is not None

    def score(rows: np.ndarray) -> list[dict[str, Any]]:
        x = lookup.x[rows]
        out: dict[str, Any] = {}
        for task, model in engine.models.items():
            xm = x if model.columns is None else x[:, model.columns]
            out.update(model.estimator.predict_matrix(xm, 1))
            out[f"shap_{task}"] = model.estimator.contributions_matrix(xm, 1)
        return [{k: v[i].tolist() for k, v in out.items()} for i in range(len(rows))]

    async def predict(request: Request) -> Response:
        body = from_json(await request.body())
        row = lookup.index.get(body.get("customer_id"))
        if row is None:
            return Response(b'{"error": "unknown"}', status_code=404)
        return Response(to_json(score(np.array([row]))[0]), media_type="application/json")

    async def predict_batch(request: Request) -> Response:
        body = from_json(await request.body())
        rows = np.array([lookup.index[item["customer_id"]] for item in body["items"]])
        if len(rows) >= BATCH_ROWS:
            items = await anyio.to_thread.run_sync(score, rows)
        else:
            items = score(rows)
        return Response(to_json({"items": items}), media_type="application/json")

    async def ready(_: Request) -> Response:
        return Response(b"ok")

    return Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/predict_batch", predict_batch, methods=["POST"]),
            Route("/readyz", ready),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=3100)
    parser.add_argument("--lookup", required=True)
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args()
    engine = Engine.load(tracking_uri=args.tracking_uri, lookup=args.lookup, use_uplift=False)
    app = build_app(engine)
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
