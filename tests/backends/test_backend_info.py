"""Backends described as data: every built-in declares a ``BackendInfo`` that the loop reads (no
probing of the class), its options are refused for other backends, and the transformers runner
leaves the process's autograd as it found it."""

from __future__ import annotations

import pytest

from llama_zoo.errors import LlamaZooError
from llama_zoo.options import Option
from llama_zoo.backends import BACKENDS
from llama_zoo.backends.base import METHOD_FOR, TEXT, TOKENS, BackendInfo, GenerateRequest, TokenWindow

BUILT_IN = {"hf", "vllm", "llama.cpp", "openai"}


def test_every_built_in_backend_declares_what_it_answers_as_methods_it_has():
    for name in BUILT_IN:
        info = BACKENDS.get(name).info
        assert info.name == name and info.inputs in (TOKENS, TEXT) and info.answers
        for kind in info.answers:  # what it declares, it has: the loop calls these without looking
            assert callable(getattr(BACKENDS.get(name), METHOD_FOR[kind]))
    assert BACKENDS.get("openai").info.server and not BACKENDS.get("hf").info.server
    assert BACKENDS.get("hf").info.chunk_for("cuda") == 1024 and BACKENDS.get("hf").info.chunk_for("cpu") == 64


def test_a_backend_refuses_options_it_does_not_declare_and_checks_its_own():
    info = BACKENDS.get("openai").info
    assert info.resolve_options({"base_url": "http://x/v1"})["concurrency"] == 8  # defaults filled in
    with pytest.raises(LlamaZooError, match="--threads is not an option of --backend openai"):
        info.resolve_options({"threads": 2})
    with pytest.raises(LlamaZooError, match="--concurrency must be at least 1"):
        info.resolve_options({"concurrency": 0})
    with pytest.raises(LlamaZooError, match="--threads is not an option of --backend hf"):
        BACKENDS.get("hf").info.resolve_options({"threads": 2})


def test_a_description_that_contradicts_itself_is_refused_when_it_is_written():
    answers = frozenset({TokenWindow})
    with pytest.raises(ValueError, match="inputs"):
        BackendInfo("x", "", "bytes", answers)
    with pytest.raises(ValueError, match="quantize"):
        BackendInfo("x", "", TOKENS, answers, quantize=("int8",))  # schemes without 'quantize' in placement
    with pytest.raises(ValueError, match="identity_options"):
        BackendInfo("x", "", TOKENS, answers, options=(Option("a", 1, "a"),), identity_options=("b",))
    with pytest.raises(ValueError, match="unknown"):
        BackendInfo("x", "", TOKENS, frozenset({str}))


def test_the_transformers_runner_leaves_autograd_on(catalog):
    import torch

    from llama_zoo.backends.hf import HFBackend
    from llama_zoo.backends.weights import choose_source

    spec = catalog.get("llama-3.2-1b")
    runner = HFBackend(spec, choose_source(spec, shadow=True), device="cpu", dtype="float32", max_length=64)
    assert torch.is_grad_enabled()
    scores = runner.loglikelihood_rolling([TokenWindow([1], [5, 6, 7])])
    generated = runner.generate([GenerateRequest((1, 5, 6), max_new_tokens=3)])
    assert torch.is_grad_enabled() and len(scores[0]) == 3 and generated[0].new_tokens == [3]
    weight = runner.head.weight  # its own work ran without a graph; the caller's still records one
    assert weight.requires_grad and (weight.sum() * 2).requires_grad
