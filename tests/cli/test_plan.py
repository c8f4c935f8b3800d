"""`llama-zoo plan`: per cell, the registry's own memory figures, the GPUs they need, and why a cell
cannot fit."""

from __future__ import annotations

import json
import math

import pytest

from llama_zoo.registry.catalog import load_catalog
from llama_zoo.registry.derive import GPUS, fit_on_gpu, weight_bytes
from tests.zoo import zoo


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


def _plan(*args: str, db) -> list[dict]:
    out = zoo("plan", *args, "--format", "json", db=db)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_time_is_the_suites_tokens_at_an_assumed_share_of_the_gpus_peak(tmp_path):
    from llama_zoo.suites import SUITES
    from llama_zoo.suites.core.base import Context
    from llama_zoo.orchestration.sizing import ASSUMED_MBU, ASSUMED_MFU
    from llama_zoo.registry.derive import GPU_SPEED, flops_per_token

    cells = {c["suite"]: c for c in _plan("--model", "llama-3.1-70b", "--suite", "perplexity", "--suite", "humaneval",
                                          "--context", "4096", "--batch", "8", db=tmp_path / "r.db")}
    spec, (peak, bandwidth) = load_catalog().get("llama-3.1-70b"), GPU_SPEED["H100-80GB"]
    ppl, code = cells["perplexity"], cells["humaneval"]
    suite = SUITES.get("perplexity")
    work = suite.work(Context(spec=None, options=suite.info.resolve_options({}), tokenizer=None, context=4096))
    assert ppl["scored_tokens"] == work.scored > 10_000 and ppl["generated_tokens"] == 0
    gpus = ppl["gpus"]
    assert gpus == code["gpus"] == 3 and ppl["seconds"] == pytest.approx(  # 70B, with a KV cache for 8 x 4K tokens
        work.scored * flops_per_token(spec, 4096) / (peak * gpus * ASSUMED_MFU))
    assert ppl["time_basis"].startswith("assumed: 40% of 989 TFLOP/s")
    assert code["generated_tokens"] == 164 * 512  # at most max_new_tokens for each of the 164 problems
    decode = code["generated_tokens"] / 8 * weight_bytes(spec, "bf16") / (bandwidth * gpus * ASSUMED_MBU)
    assert code["seconds"] == pytest.approx(code["scored_tokens"] * flops_per_token(spec, 4096) / (peak * gpus * ASSUMED_MFU)
                                            + decode)
    guard = _plan("--model", "llama-guard-3-8b", "--suite", "guard", db=tmp_path / "r.db")[0]
    assert guard["seconds"] is None and guard["time_basis"].startswith("no estimate")


def test_a_bench_run_of_the_same_shape_gives_the_time(tmp_path):
    """No H100 here: the bench run is stored as one made on an H100 would be (its device says so)."""
    from sqlalchemy import update

    from llama_zoo.results.identity import RunConfig
    from llama_zoo.results.orm import Run
    from llama_zoo.results.store import MetricValue, Store

    db = tmp_path / "r.db"
    store = Store.open(str(db))
    config = RunConfig(model_id="llama-3.1-8b", spec_hash="x", suite="bench", suite_version="1", backend="hf",
                       weights_source="random", weights_ref=None, weights_revision=None, weights_hash=None,
                       tokenizer_hash=None, dtype="bfloat16", dataset_name=None, dataset_revision=None,
                       dataset_hash=None, options={"context": 2048, "batch": 8}, seed=0)
    with store.begin(config) as handle:
        handle.complete([MetricValue(name="score_tokens_per_s", value=20_000.0),
                         MetricValue(name="generate_new_tokens_per_s", value=500.0)])
    with store.engine.begin() as conn:
        conn.execute(update(Run).values(device={"gpu": "NVIDIA H100 80GB HBM3", "gpu_count": 1}))
    measured = _plan("--model", "llama-3.1-8b", "--suite", "humaneval", db=db)[0]
    assert measured["time_basis"] == f"measured: bench run {handle.run_id} on NVIDIA H100 80GB HBM3"
    assert measured["seconds"] == pytest.approx(measured["scored_tokens"] / 20_000 + measured["generated_tokens"] / 500)
    other_kind = _plan("--model", "llama-3.1-8b", "--suite", "humaneval", "--gpu", "a100-80gb", db=db)[0]
    other_context = _plan("--model", "llama-3.1-8b", "--suite", "humaneval", "--context", "4096", db=db)[0]
    assert other_kind["time_basis"].startswith("assumed") and other_context["time_basis"].startswith("assumed")


def test_plan_says_which_quantisation_makes_a_model_fit(tmp_path):
    cells = {c["model"]: c for c in _plan("--model", "llama-4-scout-17b-16e-instruct", "--model", "llama-3.1-405b",
                                          "--model", "llama-3.1-8b", "--context", "8192", db=tmp_path / "r.db")}
    assert cells["llama-4-scout-17b-16e-instruct"]["gpus"] > 1
    assert cells["llama-4-scout-17b-16e-instruct"]["quantized_gpus"]["int4"] == 1  # as its model card serves it
    assert cells["llama-3.1-405b"]["quantized_gpus"]["fp8"] <= 8 < cells["llama-3.1-405b"]["gpus"]  # one node in FP8
    assert cells["llama-3.1-8b"]["quantized_gpus"] == {}  # one GPU already
    table = zoo("plan", "--model", "llama-3.1-405b", "--context", "8192", db=tmp_path / "r.db").stdout
    assert "--quantize fp8: 6 GPUs" in " ".join(table.split())


def test_the_gpus_a_cluster_task_asks_for_are_what_its_engine_will_demand():
    """vLLM shards over a power of two that divides the heads: a cell asks Ray for that, not for
    plan's plain count (90B Vision: 3 H100s of memory, 4 for vLLM); a model no power of two can
    hold asks for nothing and says why (Maverick in bf16: 40 heads)."""
    from llama_zoo.errors import LlamaZooError
    from llama_zoo.orchestration import RunRequest
    from llama_zoo.orchestration.sizing import gpus_for_request
    from llama_zoo.registry.derive import tensor_parallel_size

    catalog = load_catalog()
    hf = RunRequest(model="llama-3.2-90b-vision", suite="perplexity")
    assert gpus_for_request(hf, "perplexity", "H100-80GB") == plan_cell_gpus("llama-3.2-90b-vision", 2048) == 3
    vllm = RunRequest(model="llama-3.2-90b-vision", suite="perplexity", backend="vllm")
    assert gpus_for_request(vllm, "perplexity", "H100-80GB") == 4
    assert tensor_parallel_size(catalog.get("llama-3.1-70b"), 8192, GPUS["H100-80GB"]) == 2
    assert tensor_parallel_size(catalog.get("llama-4-maverick-17b-128e"), 8192, GPUS["H100-80GB"]) is None
    assert tensor_parallel_size(catalog.get("llama-4-maverick-17b-128e"), 8192, GPUS["H100-80GB"], dtype="fp8") == 8
    with pytest.raises(LlamaZooError, match="fits no power-of-two tensor-parallel size"):
        gpus_for_request(RunRequest(model="llama-4-maverick-17b-128e", backend="vllm"), "perplexity", "H100-80GB")
    assert gpus_for_request(RunRequest(model="llama-3.1-8b", dtype="float32"), "perplexity", "L4-24GB") == 2
    assert gpus_for_request(RunRequest(model="llama-3.1-405b", shadow=True), "perplexity", "H100-80GB") == 1


def plan_cell_gpus(model: str, context: int) -> int:
    from llama_zoo.orchestration.sizing import plan_cell

    return plan_cell(load_catalog().get(model), "perplexity", context=context, gpu="H100-80GB").gpus
