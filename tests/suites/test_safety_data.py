"""Labelled safety data and Prompt Guard's scoring rules: the published files read as their
publishers label them, mixtures interleaved, local files with their own ids, chunks of at most
512 positions, and the cards' score definitions."""

from __future__ import annotations

import math

import pytest

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.safety import data
from llama_zoo.suites.safety.prompt_guard import MIXTURES, attack_scores, chunk_requests


@pytest.fixture
def data_dir(shared, monkeypatch):
    monkeypatch.setenv("LLAMA_ZOO_DATA", str(shared))
    return shared


def test_xstest_and_openai_moderation_labels(data_dir):
    xs = data.load_labelled("xstest", None, "xstest")
    assert len(xs.rows) == 450 and sum(r.label for r in xs.rows) == 200 and xs.rows[0].id == "1"
    mod = data.load_labelled("openai-moderation", None, "xstest")
    assert len(mod.rows) == 1680 and sum(r.label for r in mod.rows) == 522  # unsafe when any category is 1
    # a missing key is unlabelled, not safe: the first row labels some categories only
    assert all(set(r.categories) <= set(data.MODERATION_CATEGORIES) for r in mod.rows)
    assert sum("H" in r.categories for r in mod.rows) == 771 and sum(r.categories.get("H", 0) for r in mod.rows) == 162


def test_the_published_file_keeps_its_name(data_dir):
    path = data_dir / "safety" / "xstest" / "xstest_prompts.csv"
    by_path = data.load_labelled(str(path), None, "xstest")
    assert by_path.name == "xstest" and by_path.content_hash == data.load_labelled("xstest", None, "xstest").content_hash


def test_prompt_attack_mixture_is_interleaved(data_dir):
    mix = data.load_labelled("prompt-attacks", None, "prompt-attacks", mixtures=MIXTURES)
    assert len(mix.rows) == 251 + 666 + 250 + 750
    assert sum(r.label for r in mix.rows) == 251 + 666
    assert [r.source for r in mix.rows[:4]] == ["cyberseceval-prompt-injection", "jailbreaks-in-the-wild", "xstest",
                                                "cyberseceval-mitre-frr"]
    assert all(r.label == 0 for r in mix.rows if r.source == "xstest")  # XSTest's safe prompts only


def test_local_file_ids_labels_and_errors(tmp_path):
    good = tmp_path / "mine.jsonl"
    good.write_text('{"prompt": "a", "response": "b", "label": "unsafe", "categories": "S1, S9"}\n'
                    '{"prompt": "c", "label": 0}\n')
    rows = data.load_labelled(str(good), None, "xstest").rows
    assert [(r.id, r.label, r.response, r.categories) for r in rows] == [("0", 1, "b", {"S1": 1, "S9": 1}), ("1", 0, None, {"S1": 0, "S9": 0})]
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,label\nhello,maybe\n")
    with pytest.raises(LlamaZooError, match="label 'maybe' is not safe/unsafe"):
        data.load_labelled(str(bad), None, "xstest")
    twice = tmp_path / "twice.csv"
    twice.write_text("id,prompt,label\n7,a,safe\n7,b,unsafe\n")
    with pytest.raises(LlamaZooError, match="ids repeat"):
        data.load_labelled(str(twice), None, "xstest")


def test_a_named_set_nowhere_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_ZOO_DATA", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(LlamaZooError, match="cyberseceval-mitre-frr: not found under \\$LLAMA_ZOO_DATA"):
        data.load_labelled("cyberseceval-mitre-frr", None, "xstest")


def test_prompt_guard_scores_follow_the_cards():
    pg1 = {"BENIGN": 0, "INJECTION": 1, "JAILBREAK": 2}
    logp = [math.log(0.5), math.log(0.3), math.log(0.2)]
    assert attack_scores(logp, pg1) == pytest.approx({"score": 0.5, "jailbreak_score": 0.2})  # 1 - p[BENIGN]
    assert attack_scores([math.log(0.9), math.log(0.1)], {"BENIGN": 0, "MALICIOUS": 1}) == pytest.approx({"score": 0.1})


def test_long_inputs_are_cut_into_framed_chunks(catalog):
    from llama_zoo.backends.tokenizers import byte_level_tokenizer

    tok = byte_level_tokenizer(catalog.get("prompt-guard-86m"))
    chunks = chunk_requests(tok, "x" * 1200, 512)
    assert [len(c.tokens) for c in chunks] == [512, 512, 1200 - 2 * 510 + 2]
    assert all(c.tokens[0] == tok.cls_token_id and c.tokens[-1] == tok.sep_token_id for c in chunks)
    assert len(chunk_requests(tok, "short", 512)) == 1
