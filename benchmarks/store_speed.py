"""Results-store speed: storing 100,000 samples, and listing 10,000 runs.

    python benchmarks/store_speed.py [--db URL]      # default: a fresh SQLite file in a temp dir

Prints one line per measurement; docs/benchmarks.md quotes them with this command.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import insert

from llama_zoo.results.identity import RunConfig
from llama_zoo.results.orm import Metric, Run
from llama_zoo.results.store import MetricValue, Store


def store_samples(store: Store, n: int) -> float:
    config = RunConfig(model_id="llama-3.1-8b", spec_hash="bench", suite="perplexity", suite_version="1",
                       backend="hf", weights_source="random", options={"nonce": uuid.uuid4().hex})
    start = time.perf_counter()
    with store.begin(config, flush_every=1000) as run:
        for i in range(n):
            run.add(i, input=f"document {i} " * 8, output="", target=None, scores={"nll": i * 0.001, "tokens": 512})
        run.complete([MetricValue("token_perplexity", 5.0, n=n)])
    return time.perf_counter() - start


def seed_runs(store: Store, n: int) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    runs = [dict(id=uuid.uuid4().hex[:12], config_hash=uuid.uuid4().hex, status="completed", model_id="llama-3.1-8b",
                 spec_hash="s", suite="perplexity", suite_version="1", options={}, weights_source="random",
                 backend="hf", device={}, versions={}, created_at=now - dt.timedelta(seconds=i)) for i in range(n)]
    with store.engine.begin() as conn:
        conn.execute(insert(Run), runs)
        conn.execute(insert(Metric), [{"run_id": r["id"], "name": name, "value": 1.0}
                                      for r in runs for name in ("word_perplexity", "bits_per_byte")])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db")
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    db = args.db or f"sqlite:///{Path(tempfile.mkdtemp()) / 'bench.db'}"
    store = Store.open(db)
    print(f"database: {store.engine.url.render_as_string()}")
    print(f"store {args.samples:,} samples: {store_samples(store, args.samples):.2f} s")
    seed_runs(store, args.runs)
    start = time.perf_counter()
    rows = store.list_runs()
    print(f"list {len(rows):,} runs (Store.list_runs, with metrics): {time.perf_counter() - start:.3f} s")
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "llama_zoo", "runs", "list", "--format", "json", "--db", db],
                         capture_output=True, check=True)
    print(f"llama-zoo runs list --format json ({len(out.stdout) // 1024:,} KiB, process start included): "
          f"{time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
