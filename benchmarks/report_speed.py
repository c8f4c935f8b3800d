"""Rendering the HTML report over 1,000 runs x 10 metrics (a third of them shadow runs, the
suites' charted metrics among the ten, so every chart and both tables per suite are drawn).

    python benchmarks/report_speed.py
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import insert

from llama_zoo.registry.catalog import load_catalog
from llama_zoo.reports.html import render_html
from llama_zoo.results.orm import Metric, Run
from llama_zoo.results.store import Store


def main() -> None:
    store = Store.open(str(Path(tempfile.mkdtemp()) / "bench.db"))
    models = [s.id for s in load_catalog() if s.architecture is not None]
    now = dt.datetime.now(dt.timezone.utc)
    runs = [dict(id=uuid.uuid4().hex[:12], config_hash=uuid.uuid4().hex, status="completed",
                 model_id=models[i % len(models)], spec_hash="s", suite=("perplexity", "humaneval")[i % 2],
                 suite_version="1", options={"protocol": "rolling", "limit": i},
                 weights_source="shadow" if i % 3 == 0 else "hub", backend="hf",
                 device={}, versions={}, created_at=now - dt.timedelta(seconds=i)) for i in range(1000)]
    charted = {"perplexity": ["token_perplexity", "word_perplexity"], "humaneval": ["pass@1", "pass@10", "pass@100"]}
    metrics = [{"run_id": r["id"], "name": (charted[r["suite"]] + [f"metric_{j}" for j in range(10)])[k],
                "value": 1.0 + k + i / 1000, "ci_low": k + i / 1000, "ci_high": k + 2 + i / 1000, "n": 100}
               for i, r in enumerate(runs) for k in range(10)]
    with store.engine.begin() as conn:
        conn.execute(insert(Run), runs)
        conn.execute(insert(Metric), metrics)
    start = time.perf_counter()
    html = render_html(store)
    elapsed = time.perf_counter() - start
    print(f"1,000 runs x 10 metrics: rendered in {elapsed:.2f} s, {len(html.encode()) / 2**20:.2f} MiB")


if __name__ == "__main__":
    main()
