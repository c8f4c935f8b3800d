"""Loading a variant on the hardware there is: a checkpoint quantised as it loads (``--quantize``,
bitsandbytes and torchao, run here on the CPU with the real SmolLM2-135M), and device maps
(accelerate's placement of whole layers) checked against ``plan``'s arithmetic on full-size models
built on the meta device. Spreading over real GPUs and vLLM's tensor parallelism cannot run here."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest

from llama_zoo.orchestration.sizing import plan_cell
from llama_zoo.registry.catalog import load_catalog
from llama_zoo.registry.derive import GPUS
from tests.zoo import zoo



def _needs_bitsandbytes() -> None:
    pytest.importorskip("bitsandbytes", reason="--quantize int8/int4 needs bitsandbytes (the quantize extra)")


def _ppl(out) -> tuple[str, float, bool]:
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    return result["run_id"], result["metrics"]["word_perplexity"]["value"], result["cached"]


@pytest.mark.slow
def test_a_real_checkpoint_quantised_as_it_loads(smollm2_dir, tmp_path):
    _needs_bitsandbytes()
    pytest.importorskip("torchao", reason="--quantize fp8 needs torchao (the quantize extra)")
    db = tmp_path / "r.db"
    args = ("eval", "--model", str(smollm2_dir), "--suite", "perplexity", "--limit", "2", "--format", "json")
    full_id, full, _ = _ppl(zoo(*args, db=db))
    runs = {}
    for scheme in ("int8", "int4", "fp8"):
        runs[scheme] = _ppl(zoo(*args, "--quantize", scheme, db=db))
    # each scheme is its own run, never a cache hit for the float32 one (or for each other)
    assert len({full_id, *(r[0] for r in runs.values())}) == 4
    assert not any(cached for _, _, cached in runs.values())
    assert _ppl(zoo(*args, "--quantize", "int4", db=db))[2]  # the same scheme again is
    # close to float32 where the format keeps 8 bits; NF4 on a 135M model loses more (41% measured)
    assert runs["int8"][1] == pytest.approx(full, rel=0.06)
    assert runs["fp8"][1] == pytest.approx(full, rel=0.08)
    assert full < runs["int4"][1] < full * 1.6
    stored = json.loads(zoo("runs", "show", runs["int4"][0], "--format", "json", db=db).stdout)
    assert stored["options"]["quantize"] == {"scheme": "int4", "library": "bitsandbytes",
                                             "method": "NF4, no double quantisation"}
    assert stored["runner"]["quantize"]["library"] == "bitsandbytes" and stored["runner"]["quantize"]["version"]
    board = zoo("report", "--format", "md", db=db).stdout
    assert "quantize=int4" in board and "quantize=fp8" in board


def test_int4_weights_are_bitsandbytes_layers_and_take_less_memory(smollm2_dir):
    _needs_bitsandbytes()
    from llama_zoo.registry.checkpoint import from_path
    from llama_zoo.backends.hf import HFBackend
    from llama_zoo.backends.weights import choose_source

    spec, checkpoint = from_path(str(smollm2_dir))
    source = choose_source(spec, checkpoint=checkpoint)
    full = HFBackend(spec, source, device="cpu", dtype="float32")
    small = HFBackend(spec, source, device="cpu", dtype="float32", quantize="int4")
    linear = small.model.model.layers[0].mlp.down_proj
    assert type(linear).__name__ == "Linear4bit" and linear.weight.quant_type == "nf4"
    assert small.model.get_memory_footprint() < 0.5 * full.model.get_memory_footprint()


@pytest.mark.parametrize("args,message", [
    (("--model", "llama-3.2-1b", "--shadow", "--quantize", "int4"),
     "--quantize quantises a checkpoint as it loads (--weights DIR or the hub), not a shadow model"),
    (("--model", "llama-3.2-1b", "--random-weights", "--quantize", "fp8"), "not random weights"),
    (("--model", "llama-3.2-1b", "--shadow", "--tensor-parallel", "2"), "--tensor-parallel is for --backend vllm, not hf"),
    (("--model", "llama-3.2-1b", "--quantize", "int3"), "'int3' is not one of"),
])
def test_placement_options_that_cannot_apply_are_one_line(args, message, tmp_path):
    out = zoo("eval", *args, db=tmp_path / "r.db")
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) <= 4 if "not one of" in message else len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("kind", ["shadow", "random"])
def test_the_backend_refuses_to_quantise_weights_built_in_memory(kind):
    """Only from_pretrained quantises: a model built in memory would run unquantised under the
    scheme's name (benchmarks/gpu.py once timed bf16 as fp8 this way), so the library refuses it
    as the CLI does."""
    from llama_zoo.backends.base import BackendError
    from llama_zoo.backends.hf import HFBackend
    from llama_zoo.backends.weights import choose_source

    spec = load_catalog().get("llama-3.2-1b")
    source = choose_source(spec, shadow=kind == "shadow", random_weights=kind == "random")
    with pytest.raises(BackendError, match=f"quantises a checkpoint as it loads, not {kind} weights"):
        HFBackend(spec, source, device="cpu", dtype="float32", quantize="fp8")


def test_a_checkpoint_loads_with_transformers_own_layers(smollm2_dir, smollm2_gguf):
    """transformers 5.25 swaps layers fetched from the hub (kernels-community) into a checkpoint it
    loads when the kernels package is installed, and on CUDA fails offline (seen on an H200): a run
    measures transformers' own code, with nothing fetched."""
    from llama_zoo.backends.hf import HFBackend
    from llama_zoo.backends.weights import choose_source
    from llama_zoo.registry.checkpoint import from_path

    for path in (smollm2_dir, smollm2_gguf):
        spec, checkpoint = from_path(str(path))
        runner = HFBackend(spec, choose_source(spec, checkpoint=checkpoint), device="cpu", dtype="float32")
        assert runner.model.use_kernels is False


def test_a_gguf_file_is_not_quantised_again(smollm2_gguf, tmp_path):
    out = zoo("eval", "--model", str(smollm2_gguf), "--quantize", "int8", db=tmp_path / "r.db")
    assert out.returncode == 2 and "not a GGUF file (quantised already" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_device_map_is_how_not_what(tmp_path):
    """Spreading a model changes where it runs, not its numbers: the same run, a cache hit."""
    db = tmp_path / "r.db"
    args = ("eval", "--model", "llama-3.2-1b", "--shadow", "--limit", "2", "--format", "json")
    first = _ppl(zoo(*args, db=db))
    mapped = _ppl(zoo(*args, "--device-map", "sequential", db=db))
    assert mapped[0] == first[0] and mapped[2]


@pytest.fixture(scope="module")
def meta_70b():
    from llama_zoo.registry.to_transformers import meta_model

    spec = load_catalog().get("llama-3.1-70b")
    return spec, meta_model(spec)


def test_device_maps_agree_with_plan(meta_70b):
    """70B in bf16 at 8K: plan says two H100s; accelerate places it on two 80 GB devices whole
    layers at a time with nothing left for the CPU, and on one it must offload to the CPU."""
    import torch

    from llama_zoo.backends.placement import device_map_for

    spec, model = meta_70b
    cell = plan_cell(spec, "perplexity", context=8192, gpu="H100-80GB")
    assert cell.gpus == 2
    budget = {i: GPUS["H100-80GB"] for i in range(cell.gpus)}
    spread = device_map_for(model, "sequential", {**budget, "cpu": 1e12}, dtype=torch.bfloat16)
    placed = Counter(spread.values())
    assert set(placed) == {0, 1}  # two GPUs hold it, the CPU nothing
    assert spread["model.embed_tokens"] == 0 and spread["lm_head"] == 1
    layers = [spread[f"model.layers.{i}"] for i in range(spec.text_arch.num_hidden_layers)]
    assert layers == sorted(layers)  # in order, each layer whole on one device
    one = Counter(device_map_for(model, "sequential", {0: GPUS["H100-80GB"], "cpu": 1e12}, dtype=torch.bfloat16).values())
    assert one["cpu"] > 0 and one[0] > 0
    balanced = Counter(device_map_for(model, "balanced", {**budget, "cpu": 1e12}, dtype=torch.bfloat16).values())
    assert set(balanced) == {0, 1} and abs(balanced[0] - balanced[1]) <= math.ceil(0.2 * sum(balanced.values()))
