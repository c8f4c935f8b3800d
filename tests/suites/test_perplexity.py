"""The perplexity suite: windows, metrics, and agreement with lm-eval on the same model and text."""

from __future__ import annotations

import json
import math
import random

import pytest
import torch

from llama_zoo.suites.perplexity.corpora import stdlib_docs
from llama_zoo.suites.perplexity.suite import build_units, count_bytes, count_words, metrics, rolling_windows, sliding_windows
from llama_zoo.registry.catalog import load_catalog
from llama_zoo.registry.to_transformers import model_class, shadow_config
from llama_zoo.backends.base import TokenWindow
from llama_zoo.backends.hf import HFBackend
from llama_zoo.backends.weights import choose_source

CATALOG = load_catalog()


@pytest.mark.parametrize("n", [1, 5, 16, 17, 33, 257])
@pytest.mark.parametrize("max_len", [1, 8, 16])
def test_rolling_windows_are_lm_evals(n, max_len):
    from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

    tokens = [random.Random(n * 31 + max_len).randint(3, 999) for _ in range(n)]
    theirs = [make_disjoint_window(w) for w in get_rolling_token_windows(tokens, 1, max_len, 1)]
    assert [(list(w.context), list(w.targets)) for w in rolling_windows(tokens, 1, max_len)] == theirs


@pytest.mark.parametrize("n,max_len,stride", [(1, 8, 4), (50, 8, 4), (50, 16, 16), (51, 16, 5), (200, 32, 1)])
def test_sliding_windows_score_every_token_once_with_history(n, max_len, stride):
    tokens = list(range(10, 10 + n))
    windows = sliding_windows(tokens, 1, max_len, stride)
    assert [t for w in windows for t in w.targets] == tokens
    assert all(w.length <= max_len for w in windows)
    assert all(len(w.context) >= max_len - stride for w in windows[1:])


def test_gptq_chunks_drop_the_tail(shared):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(shared / "tokenizers" / "llama2")
    texts = stdlib_docs().texts
    ids = tokenizer("\n\n".join(texts)).input_ids
    units = build_units("gptq", texts, tokenizer, 256)
    assert len(units) == len(ids) // 256 and ids[0] == tokenizer.bos_token_id
    assert [t for u in units for w in u.windows for t in [*w.context, *w.targets]] == ids[:len(units) * 256]
    assert len(build_units("gptq", texts, tokenizer, 256, limit=3)) == 3


def test_metrics_are_ratios_of_sums_with_intervals():
    scores = [{"logprob": -10.0, "tokens": 5, "words": 2, "bytes": 10},
              {"logprob": -30.0, "tokens": 10, "words": 3, "bytes": 20},
              {"logprob": -20.0, "tokens": 5, "words": 5, "bytes": 30}]
    by_name = {m["name"]: m for m in metrics(scores)}
    assert by_name["token_perplexity"]["value"] == pytest.approx(math.exp(60 / 20))
    assert by_name["word_perplexity"]["value"] == pytest.approx(math.exp(60 / 10))
    assert by_name["byte_perplexity"]["value"] == pytest.approx(math.exp(60 / 60))
    assert by_name["bits_per_byte"]["value"] == pytest.approx(1 / math.log(2))
    for m in by_name.values():
        assert m["ci_low"] <= m["value"] <= m["ci_high"] and m["n"] == 3


@pytest.fixture(scope="module")
def llama2_dir(tmp_path_factory, shared):
    """A shadow Llama 2 saved to disk with the real Llama 2 tokenizer: a checkpoint both harnesses load."""
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("shadow-llama-2-7b")
    torch.manual_seed(0)
    spec = CATALOG.get("llama-2-7b")
    model_class("llama")(shadow_config(spec)).save_pretrained(path)
    AutoTokenizer.from_pretrained(shared / "tokenizers" / "llama2").save_pretrained(path)
    return path


def test_chunked_log_probs_equal_full_logits(llama2_dir):
    spec = CATALOG.get("llama-2-7b")
    runner = HFBackend(spec, choose_source(spec, weights=str(llama2_dir)), device="cpu", max_length=64)
    ids = runner.tokenizer(stdlib_docs().texts[0]).input_ids[:40]
    windows = [TokenWindow(ids[:5], ids[5:40]), TokenWindow(ids[:1], ids[1:12])]
    ours = runner.loglikelihood_rolling(windows)
    with torch.no_grad():
        for w, got in zip(windows, ours):
            seq = torch.tensor([list(w.context) + list(w.targets[:-1])])
            full = torch.log_softmax(runner.model(seq).logits.float(), -1)[0]
            want = [full[len(w.context) - 1 + i, t].item() for i, t in enumerate(w.targets)]
            assert got == pytest.approx(want, abs=1e-5)


@pytest.mark.slow
def test_rolling_word_and_byte_perplexity_equal_lm_evals(llama2_dir, tmp_path):
    """The anchor: lm-eval's hf model and loglikelihood_rolling on the same checkpoint and documents."""
    from lm_eval.api.instance import Instance
    from lm_eval.api.metrics import bits_per_byte, weighted_perplexity
    from lm_eval.models.huggingface import HFLM

    from llama_zoo.orchestration import RunRequest, evaluate
    from llama_zoo.results.store import Store

    docs = stdlib_docs().texts[:6]
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in docs))
    context = 128  # several windows per document

    lm = HFLM(pretrained=str(llama2_dir), max_length=context, batch_size=4, dtype="float32", device="cpu")
    requests = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(t,), idx=i) for i, t in enumerate(docs)]
    logliks = lm.loglikelihood_rolling(requests, disable_tqdm=True)
    theirs = {
        "word_perplexity": weighted_perplexity([(ll, count_words(t)) for ll, t in zip(logliks, docs)]),
        "byte_perplexity": weighted_perplexity([(ll, count_bytes(t)) for ll, t in zip(logliks, docs)]),
        "bits_per_byte": bits_per_byte([(ll, count_bytes(t)) for ll, t in zip(logliks, docs)]),
    }

    outcome = evaluate(RunRequest(model="llama-2-7b", suite="perplexity", suite_options={"protocol": "rolling"},
                                  weights=str(llama2_dir), dataset=str(data), context=context, device="cpu", batch_size=4),
                       Store.open(str(tmp_path / "r.db")))
    ours = {m["name"]: m["value"] for m in outcome.metrics}
    for name, value in theirs.items():
        assert ours[name] == pytest.approx(value, rel=1e-4), name
    assert outcome.units == len(docs)


@pytest.mark.parametrize("model_id", ["llama-3.2-11b-vision", "llama-4-maverick-17b-128e", "llama-guard-3-1b"])
def test_text_scoring_through_every_model_class(model_id):
    spec = CATALOG.get(model_id)
    runner = HFBackend(spec, choose_source(spec, shadow=True), device="cpu", max_length=64)
    ids = runner.tokenizer("def add(a, b):\n    return a + b\n").input_ids
    out = runner.loglikelihood_rolling(rolling_windows(ids, runner.tokenizer.bos_token_id, 16))
    flat = [x for window in out for x in window]
    assert len(flat) == len(ids) and all(x < 0 for x in flat)
    assert -sum(flat) / len(flat) == pytest.approx(math.log(spec.text_arch.vocab_size), rel=0.2)  # random ≈ uniform


def test_generation_and_next_token_scores_on_a_shadow():
    from llama_zoo.backends.base import GenerateRequest, NextTokenRequest

    spec = CATALOG.get("llama-3.2-1b")
    runner = HFBackend(spec, choose_source(spec, shadow=True), device="cpu", max_length=64)
    prompt = runner.tokenizer("Once upon a time").input_ids
    first, again = runner.generate([GenerateRequest(prompt, max_new_tokens=6)] * 2)
    assert first == again and first.new_tokens == [6]  # greedy is deterministic
    sampled = runner.generate([GenerateRequest(prompt, max_new_tokens=4, temperature=1.0, n=3, seed=1)])[0]
    assert len(sampled.texts) == 3
    scores = runner.next_token_scores([NextTokenRequest(prompt, [10, 20, 30])])[0]
    assert len(scores) == 3 and all(s < 0 for s in scores)
    assert sum(math.exp(s) for s in scores) < 1
