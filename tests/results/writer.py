"""A process that writes one run to a results store: the subject of the crash and concurrency tests.

    python writer.py DB_URL TAG N_SAMPLES [--slow SECONDS] [--flush-every K]

Prints "ready <run_id> <resumed>" once the run exists, then "done" after completing it.
"""

from __future__ import annotations

import argparse
import time

from llama_zoo.results.identity import RunConfig
from llama_zoo.results.store import MetricValue, Store


def config(tag: str) -> RunConfig:
    return RunConfig(model_id="llama-3.2-1b", spec_hash="test", suite="perplexity", suite_version="1",
                     backend="hf", weights_source="shadow", weights_hash=tag, options={"tag": tag})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("tag")
    parser.add_argument("n", type=int)
    parser.add_argument("--slow", type=float, default=0.0, help="seconds to sleep after each sample")
    parser.add_argument("--flush-every", type=int, default=100)
    args = parser.parse_args()
    store = Store.open(args.db)
    with store.begin(config(args.tag), flush_every=args.flush_every, n_samples=args.n) as run:
        print("ready", run.run_id, run.resumed, flush=True)
        for i in range(args.n):
            if i in run.done:
                continue
            run.add(i, input=f"document {i}", output=f"{i * 2}", target=str(i * 2), scores={"nll": i / 7})
            if args.slow:
                time.sleep(args.slow)
        run.flush()
        total = sum(s["scores"]["nll"] for s in store.iter_samples(run.run_id))
        run.complete([MetricValue("sum_nll", total, n=args.n)])
    print("done", flush=True)


if __name__ == "__main__":
    main()
