"""`llama-zoo plan`: per cell, the registry's own memory figures, the GPUs they need, and why a cell
cannot fit."""

from __future__ import annotations

import json
import math

from llama_zoo.registry.catalog import load_catalog
from llama_zoo.registry.derive import GPUS, fit_on_gpu, weight_bytes
from tests.cli.test_eval_cli import zoo


def test_405b_in_bf16_at_8k_needs_the_h100s_its_derived_memory_says(tmp_path):
    out = zoo("plan", "--models", "llama-3.1-*", "--suite", "perplexity", "--context", "8192", "--gpu", "h100-80gb",
              "--format", "json", db=tmp_path / "r.db")
    assert out.returncode == 0, out.stderr
    cells = {c["model"]: c for c in json.loads(out.stdout)}
    assert len(cells) == 6
    spec = load_catalog().get("llama-3.1-405b")
    big = cells["llama-3.1-405b"]
    assert big["weights_bytes"] == weight_bytes(spec, "bf16")
    assert big["needed_bytes"] == fit_on_gpu(spec, "H100-80GB", 8192).needed_bytes  # what `models show` prints
    assert big["gpus"] == math.ceil(big["needed_bytes"] / GPUS["H100-80GB"]) == 12
    assert not big["fits"] and "more than one 8-GPU node" in big["why_not"]
    assert cells["llama-3.1-8b"]["gpus"] == 1 and cells["llama-3.1-8b"]["fits"]
    fp8 = json.loads(zoo("plan", "--model", "llama-3.1-405b", "--dtype", "fp8", "--context", "8192", "--format", "json",
                         db=tmp_path / "r.db").stdout)[0]
    assert fp8["fits"] and fp8["gpus"] <= 8  # FP8 on one node, as Meta serves it


def test_bad_plans_are_one_line(tmp_path):
    for args, message in ((("--model", "llama-3.1-8b", "--gpu", "tpu-v5"), "unknown GPU 'tpu-v5'"),
                          (("--models", "llama-9-*"), "matches no registry model"),
                          (("--model", "llama-2-7b", "--context", "8192", "--format", "json"), None)):
        out = zoo("plan", *args, db=tmp_path / "r.db")
        if message is None:  # past the model's positions: planned, and marked
            cell = json.loads(out.stdout)[0]
            assert out.returncode == 0 and not cell["fits"] and "exceeds the model's 4,096 positions" in cell["why_not"]
        else:
            assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1
