"""The same 6-cell shadow matrix with each executor, side by side in one run, each into a fresh
SQLite store: local (one cell after another), local --parallel 2, Ray with a local cluster started
for the run, and Ray on a cluster already running (``ray start --head`` here, before timing).

    python benchmarks/matrix_executors.py [--repeats 2]

Prints one line per executor and repeat (wall time of the whole command, cells stored), then the
overhead per cell of each against the local executor; docs/benchmarks.md quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MATRIX = ["--model", "llama-3.2-11b-vision-instruct", "--model", "llama-3.2-90b-vision-instruct",
          "--model", "llama-4-scout-17b-16e-instruct", "--suite", "perplexity", "--suite", "vqa",
          "--shadow", "--limit", "2", "--format", "json"]


def run(extra: list[str], db: Path) -> tuple[float, list[str]]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "llama_zoo", "eval", *MATRIX, *extra, "--db", str(db)],
                         capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(extra) or 'local'} failed: {out.stderr.strip()[-500:]}")
    statuses = [c["status"] for c in json.loads(out.stdout)]
    if statuses != ["completed"] * 6:
        raise SystemExit(f"{' '.join(extra) or 'local'}: expected six completed cells, got {statuses}")
    return wall, statuses


def main() -> None:
    # one auth setting for the cluster started here and every driver (see tests/cli/test_scale.py)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    ray = str(Path(sys.executable).with_name("ray"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([ray, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
                    "--num-gpus=0", "--include-dashboard=false", "--disable-usage-stats"], check=True,
                   capture_output=True)
    executors = {"local": [], "local --parallel 2": ["--parallel", "2"], "ray (local cluster per run)": ["--executor", "ray"],
                 "ray (running cluster)": ["--executor", "ray", "--ray-address", f"127.0.0.1:{port}"]}
    walls: dict[str, list[float]] = {name: [] for name in executors}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for repeat in range(args.repeats):
                for i, (name, extra) in enumerate(executors.items()):  # interleaved: drift hits each alike
                    wall, statuses = run(extra, Path(tmp) / f"{repeat}-{i}.db")  # a fresh store each time
                    walls[name].append(wall)
                    print(f"{name:30s} repeat {repeat + 1}: {wall:6.2f} s  {statuses}", flush=True)
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True)
    base = statistics.median(walls["local"])
    print()
    for name, values in walls.items():
        median = statistics.median(values)
        print(f"{name:30s} median {median:6.2f} s  ratio to local {median / base:4.2f}x  "
              f"overhead per cell {(median - base) / 6:+5.2f} s")


if __name__ == "__main__":
    main()
