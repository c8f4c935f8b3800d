"""A run's identity in three parts (the suite's options, the run's facts, what is only shown),
hashed and stored as the one mapping it was before the split."""

from __future__ import annotations

import hashlib
import json

import pytest

from llama_zoo.results.identity import RunConfig, split_options

COMMON = dict(model_id="code-llama-7b", spec_hash="s", suite="humaneval", suite_version="1", backend="hf",
              weights_source="shadow", seed=0)
SUITE = {"samples": 1, "temperature": 0.0, "limit": 2, "context": 2048}
FACTS = {"tokenizer_source": "byte-level stand-in", "device": "cpu"}
SHOWN = {"sandbox": {"network": "namespace", "uid": "own"}}


def _hash_as_before(options: dict) -> str:
    """The config hash as the code before the split computed it: every RunConfig field, the
    options as one mapping."""
    fields = dict(weights_ref=None, weights_revision=None, weights_hash=None, tokenizer_hash=None, dtype=None,
                  dataset_name=None, dataset_revision=None, dataset_hash=None)
    row = {**COMMON, **fields, "options": options}
    return hashlib.sha256(json.dumps(row, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def test_the_hash_is_the_one_of_the_merged_options():
    split = RunConfig(**COMMON, options=SUITE, facts=FACTS, shown=SHOWN)
    assert split.config_hash() == _hash_as_before({**SUITE, **FACTS, **SHOWN})
    assert split.columns()["options"] == {**SUITE, **FACTS, **SHOWN} and "facts" not in split.columns()
    # a fact is part of what identifies a run
    assert RunConfig(**COMMON, options=SUITE, facts={**FACTS, "device": "cuda"}, shown=SHOWN).config_hash() != split.config_hash()


def test_a_stored_mapping_splits_back_into_its_parts():
    assert split_options({**SUITE, **FACTS, **SHOWN}) == (SUITE, FACTS, SHOWN)
    assert split_options(None) == ({}, {}, {})


@pytest.mark.parametrize("parts,message", [
    (dict(options={"device": "cpu"}), "suite options may not be named device"),
    (dict(facts={"protocol": "rolling"}), "facts takes"),
    (dict(shown={"device": "cpu"}), "shown takes"),
])
def test_each_key_belongs_to_one_part(parts, message):
    with pytest.raises(ValueError, match=message):
        RunConfig(**COMMON, **parts)


@pytest.mark.parametrize("suite,external,stored", [
    ("perplexity", False, {"limit": 3, "context": 512}),
    ("humaneval", False, {"limit": 3, "context": 512}),
    ("humaneval", True, {"limit": 3}),  # a samples file: no model, no context
    ("bench", False, {"context": 512}),  # bench takes no limit
    ("vqa", False, {"limit": 3}),  # stored without context before the loop owned it
    ("refusal", False, {"limit": 3}),
])
def test_the_loop_writes_limit_and_context_where_suites_did(suite, external, stored):
    from llama_zoo.suites import SUITES
    from llama_zoo.orchestration.loop import _shared_options

    assert _shared_options(SUITES.get(suite).info, 3, 512, external) == stored


def test_a_suite_takes_the_first_rows_of_the_limit():
    from llama_zoo.suites.core.base import Context, Sample

    rows = list(range(10))
    assert Context(spec=None, options={}, tokenizer=None, context=8, limit=3).first(rows) == [0, 1, 2]
    assert Context(spec=None, options={}, tokenizer=None, context=8).first(rows) == rows
    sample = Sample(4, input_ref="task 4", scores={"passed": True})
    assert sample.columns() == {"input": None, "input_ref": "task 4", "output": None, "target": None,
                                "scores": {"passed": True}, "extra": None}
