"""``llama-zoo eval`` end to end on CPU with shadow models, and every way to call it wrongly (in
this process through the ``zoo`` fixture; start-up imports and environment read at import time in a
subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("model", ["llama-3.2-1b", "llama-2-7b", "code-llama-7b"])
def test_shadow_perplexity_completes_is_stored_and_rerun_is_a_cache_hit(zoo, model, tmp_path):
    db = tmp_path / "results.db"
    args = ("eval", "--model", model, "--suite", "perplexity", "--shadow", "--limit", "4")
    first = zoo(*args, db=db)
    assert first.returncode == 0, first.stderr
    assert "completed" in first.stdout and "word_perplexity" in first.stdout
    assert "shadow: not a measurement of the real model" in first.stdout  # never shown as if it measured the model
    again = json.loads(zoo(*args, "--format", "json", db=db).stdout)
    assert again["cached"] is True
    assert again["timing"] == {"wall_s": 0.0, "model_s": 0.0, "tokens": 0}  # a cache hit does no work
    assert set(again["metrics"]) == {"token_perplexity", "word_perplexity", "byte_perplexity", "bits_per_byte"}
    runs = json.loads(zoo("runs", "list", "--format", "json", db=db).stdout)
    assert len(runs) == 1 and runs[0]["status"] == "completed" and runs[0]["weights_source"] == "shadow"
    shown = json.loads(zoo("runs", "show", again["run_id"], "--format", "json", db=db).stdout)
    assert shown["samples_stored"] == 4 and shown["options"]["protocol"] == "rolling"
    assert shown["tokenizer_hash"] and shown["dataset_name"] == "stdlib-docs" and shown["dataset_hash"]
    if model == "llama-3.2-1b":  # the seconds a fresh run spent, in all and in backend calls
        timing = json.loads(zoo(*args, "--force", "--format", "json", db=db).stdout)["timing"]
        assert timing["tokens"] > 0 and 0 < timing["model_s"] <= timing["wall_s"]


@pytest.mark.parametrize("args,message", [
    (("--model", "llama-9-1b"), "unknown model 'llama-9-1b'"),
    (("--model", "prompt-guard-86m"), "prompt-guard-86m has no language-model head"),
    (("--model", "llama-4-behemoth"), "has no published architecture"),
    (("--model", "llama-3.2-1b", "--dataset", "/no/such/file.txt"), "no dataset '/no/such/file.txt'"),
    (("--model", "llama-2-7b", "--context", "8192"), "--context 8192 exceeds llama-2-7b's 4096 positions"),
    (("--model", "llama-3.2-1b", "--backend", "vllm"), "vLLM, which is not installed"),
    (("--model", "llama-3.2-1b", "--suite", "mmlu"), "unknown suite 'mmlu'"),
    (("--model", "llama-3.2-1b", "--protocol", "magic"), "'magic' is not one of"),
    (("--model", "llama-3.2-1b", "--shadow", "--weights", "/tmp"), "choose one of"),
    (("--model", "llama-3.2-1b", "--weights", "/tmp"), "no config.json there"),
    (("--model", "llama-3.2-1b", "--model", "llama-2-7b", "--suite", "perplexity", "--suite", "vqa", "--shadow", "--subset",
      "multi-line"), "--subset is an option of"),  # a matrix: an option none of its suites takes
    (("--model", "llama-3.2-1b", "--shadow", "--fim-mode", "spm"), "--fim-mode is an option of humaneval-infilling, not of perplexity"),
    (("--model", "llama-3.2-1b", "--shadow", "--suite", "humaneval", "--top-p", "1.5"), "--top-p must be between 0.0 and 1.0"),
    (("--model", "llama-3.2-1b", "--suite", "bench", "--weights", "/tmp"), "the bench suite takes shadow, random weights only"),
])
def test_bad_input_is_one_line(zoo, args, message, tmp_path):
    result = zoo("eval", "--shadow", *args, db=tmp_path / "r.db") if "--weights" not in args and "--shadow" not in args \
        else zoo("eval", *args, db=tmp_path / "r.db")
    assert result.returncode == 2, result.stdout
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_bench_on_a_shadow_measures_and_stores(zoo, tmp_path):
    db = tmp_path / "r.db"
    result = zoo("bench", "--model", "llama-3.2-1b", "--shadow", "--context", "128", "--batch", "2", "--gen-batch", "2",
                 "--new-tokens", "8", "--iters", "1", "--format", "json", db=db)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["score_tokens_per_s"] > 0 and figures["generate_new_tokens_per_s"] > 0 and 0 < figures["mfu"] < 1.5
    assert figures["weights_source"] == "shadow"
    shown = zoo("bench", "--model", "llama-3.2-1b", "--shadow", "--context", "64", "--batch", "1", "--gen-batch", "1",
                "--new-tokens", "4", "--iters", "1", db=db)
    assert "llama-3.2-1b (shadow)" in shown.stdout and "shadow: not a measurement of the real model" in shown.stdout
    run = json.loads(zoo("runs", "show", figures["run_id"], "--format", "json", db=db).stdout)
    assert run["suite"] == "bench" and {m["name"] for m in run["metrics"]} >= {"score_tokens_per_s", "mfu"}
    # the generation warm-up has the timed call's shape (CUDA graphs compile per shape, outside the timing)
    exported = zoo("runs", "export", figures["run_id"], "--format", "jsonl", db=db).stdout
    made = [json.loads(line) for line in exported.splitlines()]
    generated = {row["input_ref"]: row["scores"]["tokens"] for row in made if row["scores"]["kind"] == "generate"}
    assert generated == {"generate (warm-up)": 2 * 8, "generate": 2 * 8}
    refused = zoo("bench", "--model", "llama-3.2-1b", db=db)
    assert refused.returncode == 2 and "--random-weights" in refused.stderr


@pytest.mark.slow
def test_an_unreachable_hub_dataset_is_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "llama_zoo", "eval", "--model", "llama-3.2-1b", "--shadow",
                             "--dataset", "wikitext-2", "--db", str(tmp_path / "r.db")], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert result.returncode == 2 and "cannot load WikiText-2 from the hub" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_database_fails_before_anything_loads(tmp_path):
    """The store is opened first: a bad --db is refused before torch or transformers are imported."""
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "llama_zoo", "eval", "--model", "llama-3.2-1b",
                             "--shadow", "--db", str(tmp_path / "no" / "such" / "dir" / "r.db")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "|" not in line]
    assert len(errors) == 1 and errors[0].startswith("error:"), errors
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "llama_zoo.results.store" in imported
    assert not {m for m in imported if m.split(".")[0] in ("torch", "transformers")}


@pytest.mark.slow
def test_scoring_a_samples_file_imports_no_model_library(zoo, tmp_path):
    """Start-up is what the suite needs: scoring completions made elsewhere loads no model, so
    neither torch nor transformers is imported, nor alembic for a database already up to date."""
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "    return False\n"}) + "\n")
    args = ["eval", "--model", "code-llama-7b", "--suite", "humaneval", "--samples-file", str(samples),
            "--db", str(tmp_path / "r.db"), "--force"]
    assert zoo(*args, db=tmp_path / "r.db").returncode == 0  # creates the database
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "llama_zoo", *args],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "llama_zoo.suites.code.sandbox" in imported
    assert not {m for m in imported if m.split(".")[0] in ("torch", "transformers", "alembic", "datasets")}


def test_a_suite_that_does_not_suit_the_model_is_a_warning_stored_with_the_run(zoo, tmp_path):
    samples = tmp_path / "samples.jsonl"
    samples.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "    return False\n"}) + "\n")
    out = zoo("eval", "--model", "llama-guard-3-8b", "--suite", "humaneval", "--samples-file", str(samples), db=tmp_path / "r.db")
    assert out.returncode == 0, out.stderr  # a warning, not an error
    assert "warning: llama-guard-3-8b is a safety classifier" in out.stdout
    again = json.loads(zoo("eval", "--model", "llama-guard-3-8b", "--suite", "humaneval", "--samples-file", str(samples),
                           "--format", "json", db=tmp_path / "r.db").stdout)
    assert again["cached"] and len(again["warnings"]) == 1  # read back from the stored run
    honest = json.loads(zoo("eval", "--model", "code-llama-7b", "--suite", "humaneval", "--samples-file", str(samples),
                            "--format", "json", db=tmp_path / "r.db").stdout)
    assert honest["warnings"] == []


def test_purpose_warnings_name_the_mismatch():
    from llama_zoo.suites import SUITES
    from llama_zoo.suites.core.base import purpose_warnings
    from llama_zoo.registry.catalog import load_catalog

    catalog = load_catalog()
    refusal = SUITES.get("refusal").info
    assert "is a base model" in " ".join(purpose_warnings(catalog.get("llama-3.1-8b"), refusal))
    assert purpose_warnings(catalog.get("llama-3.1-8b-instruct"), refusal) == []
    assert purpose_warnings(catalog.get("llama-guard-3-1b"), SUITES.get("guard").info) == []
    assert "safety classifier" in " ".join(purpose_warnings(catalog.get("prompt-guard-86m"), SUITES.get("perplexity").info))
