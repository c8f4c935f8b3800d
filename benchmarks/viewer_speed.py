"""``llama-zoo serve`` over a run of 1,000,000 samples: how long its pages take, and the server's
memory before and after (the resident set of the real server process, read from /proc).

    python benchmarks/viewer_speed.py [--samples 1000000]

The run is a HumanEval-like one (a prompt, a 200-character output and a pass/fail verdict per
sample, a third of them passed), written straight into a fresh SQLite store.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sqlalchemy import insert

from llama_zoo.results.orm import Run, Sample
from llama_zoo.results.store import Store

PAGES = (("first page", ""), ("a page deep inside", "?after=900000"), ("failed only", "?verdict=failed"),
         ("score range", "?score=score&min=0.5&max=0.6"), ("text found near the start", "?q=needle-17"),
         ("text found nowhere (every sample read)", "?q=absent-everywhere"))


def build(path: Path, n: int) -> str:
    store = Store.open(str(path))
    run_id = "millionrun01"
    with store.engine.begin() as conn:
        conn.execute(insert(Run), [dict(id=run_id, config_hash="c", status="completed", model_id="llama-3.1-8b",
                                         spec_hash="s", suite="humaneval", suite_version="1", options={},
                                         weights_source="hub", backend="hf", device={}, versions={},
                                         created_at=dt.datetime.now(dt.timezone.utc), n_samples=n)])
        for start in range(0, n, 50_000):
            conn.execute(insert(Sample), [
                dict(run_id=run_id, idx=i, input=f"def task_{i}(x):\n    \"\"\"Return x plus {i}.\"\"\"\n",
                     input_ref=f"Task/{i}", output=f"    return x + {i}  # needle-{i}\n" + "#" * 160,
                     scores={"passed": i % 3 == 0, "score": (i % 100) / 100}) for i in range(start, min(n, start + 50_000))])
    store.close()
    return run_id


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=1_000_000)
    args = parser.parse_args()
    db = Path(tempfile.mkdtemp()) / "viewer.db"
    began = time.perf_counter()
    run_id = build(db, args.samples)
    print(f"built {args.samples:,} samples in {time.perf_counter() - began:.1f} s ({db.stat().st_size / 2**20:,.0f} MiB)")
    port = 8000 + int(time.time()) % 1000
    server = subprocess.Popen([sys.executable, "-m", "llama_zoo", "serve", "--db", str(db), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/nothing", timeout=5)
            except urllib.error.HTTPError:
                break
            except OSError:
                time.sleep(0.1)
        idle = rss_kib(server.pid)
        print(f"server resident memory when started: {idle / 1024:,.0f} MiB")
        print("| page | seconds (best of 3) | server memory after |\n|---|---|---|")
        for label, query in PAGES:
            times = []
            for _ in range(3):
                start = time.perf_counter()
                with urllib.request.urlopen(f"{base}/runs/{run_id}{query}", timeout=600) as response:
                    body = response.read()
                times.append(time.perf_counter() - start)
            assert b'class="sample"' in body or b"no-samples" in body
            print(f"| {label} (`/runs/RUN{query}`) | {min(times):.3f} | {rss_kib(server.pid) / 1024:,.0f} MiB |")
    finally:
        server.terminate()
        server.communicate(timeout=30)


if __name__ == "__main__":
    main()
