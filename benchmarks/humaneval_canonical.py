"""Executing HumanEval's 164 canonical solutions in the sandbox, as the suite does.

    python benchmarks/humaneval_canonical.py
"""

from __future__ import annotations

import os
import time

from llama_zoo.suites.code import humaneval
from llama_zoo.suites.code.sandbox import Limits, isolation_report


def main() -> None:
    problems = humaneval.load_problems()
    samples = [(t, p["canonical_solution"]) for t, p in problems.tasks.items()]
    print(f"sandbox: {isolation_report()}, {os.cpu_count()} workers")
    start = time.perf_counter()
    outcomes = humaneval.score(problems, samples, Limits(timeout_s=3.0))
    elapsed = time.perf_counter() - start
    print(f"164 canonical solutions, 3 s limit: {sum(o.passed for o in outcomes)} passed in {elapsed:.2f} s")
    start = time.perf_counter()
    humaneval.canonical_limits(problems)
    print(f"measuring per-task limits (one canonical run each): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
