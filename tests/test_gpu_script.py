"""benchmarks/gpu.py, the script for a lent GPU, runs every step at tiny shapes on the CPU: the
first GPU session spends its minutes measuring, not debugging."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_script_dry_run_runs_every_step():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py"), "--dry-run", "--json"],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert list(rows) == ["llama-zoo bench", "greedy decode", "--quantize fp8", "--quantize int4",
                          "prefill 2,048 tokens", "vLLM"]
    # float32 on the CPU: every greedy token is the full pass's argmax, to rounding
    assert rows["greedy decode"]["worst logit gap"] < 1e-4 < rows["greedy decode"]["logit std"]
    assert not any("FAILED" in row for row in rows.values())
    assert rows["llama-zoo bench"]["score tokens/s"] > 0 and 0 < rows["llama-zoo bench"]["MFU"] < 1
    assert rows["llama-zoo bench"]["decode tokens/s"] > 0
    assert all(rows[f"--quantize {q}"]["score tokens/s"] > 0 for q in ("fp8", "int4"))
    # every linear layer of the two blocks (seven each) quantised, not the bf16 model under the scheme's name
    assert all(rows[f"--quantize {q}"]["quantised linears"] >= 14 for q in ("fp8", "int4"))
    assert rows["prefill 2,048 tokens"]["tokens"] == 2048
    assert "skipped" in rows["vLLM"]  # vLLM cannot run on this machine: the step says why
    assert "dry run: tiny shapes, no figure" in out.stdout


@pytest.mark.slow
def test_the_gpu_script_refuses_a_machine_without_cuda():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu.py")], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 2 and out.stderr.strip() == "no CUDA device here: run it on the GPU machine, or with --dry-run"
