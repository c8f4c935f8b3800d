"""Rough edges a new user hit in the first hour (issue #29): each is one clear line or a clean number."""

from __future__ import annotations

import re

import pytest


def test_a_database_path_that_is_a_directory_says_so(zoo, tmp_path):
    out = zoo("runs", "list", "--db", str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.strip() == (f"error: cannot open database sqlite:///{tmp_path}: {tmp_path} is a directory; give a "
                                  f"database file inside it, e.g. --db {tmp_path / 'results.db'}")


def test_models_diff_shows_numbers_without_float_noise(zoo):
    out = zoo("models", "diff", "llama-3.1-8b", "llama-3.2-1b")
    assert out.returncode == 0, out.stderr
    assert "fit_needed_bytes" in out.stdout
    assert not re.search(r"\d\.\d*0000\d|\d\.\d*9999\d", out.stdout), out.stdout  # 3014070681.6000004


def test_commands_that_print_a_table_or_json_refuse_csv_instead_of_printing_json(zoo, tmp_path):
    for args in (("bench", "--model", "llama-3.2-1b", "--shadow"), ("runs", "show", "abc")):
        out = zoo(*args, "--format", "csv", db=tmp_path / "r.db")
        assert out.returncode == 2 and "'csv' is not one of 'table', 'json'" in out.stderr, out.stderr
        assert not out.stdout.strip()


@pytest.mark.slow
def test_an_unreachable_hub_fails_at_once_without_retries(tmp_path):
    """A hub that refuses connections (HF_ENDPOINT at a closed port): without the probe, datasets
    retries five times with back-off ("Retrying in 8s [Retry 5/5]") before failing. The process
    boundary is what is tested: offline modes are read when the libraries are imported."""
    import os
    import subprocess
    import sys

    from tests.pg import free_port

    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "LLAMA_ZOO_DATA")}
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{free_port()}"
    out = subprocess.run([sys.executable, "-m", "llama_zoo", "eval", "--model", "llama-3.2-1b-instruct", "--shadow",
                          "--suite", "refusal", "--limit", "2", "--db", str(tmp_path / "r.db")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 2
    assert "Retry" not in out.stderr, out.stderr
    assert out.stderr.strip() == ("error: xstest: cannot load Paul/XSTest from the hub (ConnectionError); set "
                                  "LLAMA_ZOO_DATA to a directory holding xstest_prompts.csv, or give --dataset PATH")


def test_a_limit_larger_than_the_dataset_is_said(zoo, tmp_path):
    import json

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": f"Document {i}: the quick brown fox."}) + "\n" for i in range(5)))
    out = zoo("eval", "--model", "llama-3.2-1b", "--shadow", "--suite", "perplexity", "--dataset", str(docs), "--limit",
              "60", "--context", "64", "--format", "json", db=tmp_path / "r.db")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["warnings"] == ["--limit 60: the dataset gave 5 items, so all 5 ran"]
    out = zoo("eval", "--model", "llama-3.2-1b", "--shadow", "--suite", "perplexity", "--dataset", str(docs), "--limit",
              "3", "--context", "64", "--format", "json", db=tmp_path / "r.db")
    assert json.loads(out.stdout)["warnings"] == []


def test_eval_help_lists_the_options_of_the_suites_named(zoo):
    bare = zoo("eval", "--help").stdout
    assert "--category" not in bare and "--fim-mode" not in bare  # no suite's own options
    assert "llama-zoo eval --suite NAME --help" in " ".join(bare.replace("│", " ").split())
    bfcl = zoo("eval", "--suite", "bfcl", "--help").stdout
    assert "bfcl options" in bfcl and "--category" in bfcl and "--fim-mode" not in bfcl
    assert "humaneval:" not in bfcl  # a shared flag's help is the named suite's alone
    both = zoo("eval", "--suite", "bfcl", "--suite", "humaneval-infilling", "--help").stdout
    assert "--category" in both and "--fim-mode" in both
    assert "--backend openai options" not in bfcl and "--backend openai options" in zoo(
        "eval", "--suite", "bfcl", "--backend", "openai", "--help").stdout
    # a hidden flag still works where it is given
    out = zoo("eval", "--model", "llama-3.2-1b", "--shadow", "--fim-mode", "spm")
    assert out.returncode == 2 and "--fim-mode is an option of humaneval-infilling, not of perplexity" in out.stderr


def test_the_registry_table_says_which_suites_ran_on_shadows_only(zoo, tmp_path):
    import json

    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"text": f"Document {i}: the quick brown fox."}) + "\n" for i in range(3)))
    out = zoo("eval", "--model", "llama-3.2-1b", "--shadow", "--suite", "perplexity", "--dataset", str(docs),
              "--context", "64", db=tmp_path / "r.db")
    assert out.returncode == 0, out.stderr
    out = zoo("report", "-o", str(tmp_path / "r.html"), db=tmp_path / "r.db")
    assert out.returncode == 0, out.stderr
    html = (tmp_path / "r.html").read_text()
    assert html.count("perplexity (shadow only)") == 1  # llama-3.2-1b's row, and no other


def test_behind_a_proxy_the_hub_is_not_probed_directly(monkeypatch):
    from llama_zoo import hub

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setattr(hub, "reachable", lambda: (_ for _ in ()).throw(AssertionError("probed directly")))
    assert hub.offline_if_unreachable() is False
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert hub.offline_if_unreachable() is True


def test_data_that_is_neither_here_nor_on_a_reachable_hub_fails_before_anything_loads(monkeypatch, tmp_path):
    """Offline, a safety suite's named set, or an lm-eval task's hub dataset, not found under
    $LLAMA_ZOO_DATA (nor in the hub's cache) is the one-line data error
    before the backend picks a device (importing torch) or loads a tokenizer."""
    from llama_zoo.backends.hf.runner import HFBackend
    from llama_zoo.errors import LlamaZooError
    from llama_zoo.orchestration import evaluate
    from llama_zoo.orchestration.loop import RunRequest
    from llama_zoo.results.store import Store

    def loaded(*_, **__):
        raise AssertionError("the backend was asked to load before the data was checked")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("LLAMA_ZOO_DATA", str(tmp_path))  # holds none of the named sets
    monkeypatch.setattr(HFBackend, "resolve", classmethod(loaded))
    monkeypatch.setattr(HFBackend, "load_tokenizer", classmethod(loaded))
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets"))  # nothing cached
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    store = Store.open(str(tmp_path / "r.db"))
    for model, suite, dataset, message in (
            ("llama-3.2-1b-instruct", "refusal", None, "xstest: cannot load Paul/XSTest from the hub"),
            ("llama-guard-3-1b", "guard", "openai-moderation", "openai-moderation: cannot load mmathys/"),
            ("prompt-guard-86m", "prompt-guard", None, "cyberseceval-prompt-injection: not found under $LLAMA_ZOO_DATA"),
            ("llama-3.2-1b", "lm-eval:arc_easy", None, "lm-eval task arc_easy cannot load its data: allenai/ai2_arc is "
             "neither under $LLAMA_ZOO_DATA nor in the hub's cache, and the hub is offline")):
        with pytest.raises(LlamaZooError) as raised:
            evaluate(RunRequest(model, suite, shadow=True, limit=2, dataset=dataset), store)
        assert str(raised.value).startswith(message), raised.value
    assert store.completed_runs() == []


def test_plan_help_names_what_its_output_shows(zoo, tmp_path):
    text = " ".join(zoo("plan", "--help").stdout.replace("│", " ").split())
    assert "marked * in the est. time column and named under the table" in text and "basis column" not in text
    out = zoo("plan", "--model", "llama-3.1-8b", db=tmp_path / "r.db")  # no bench run stored: an assumed time
    assert out.returncode == 0, out.stderr
    assert "est. time" in out.stdout and " * " in out.stdout
    assert any(line.startswith("* time assumed:") for line in out.stdout.splitlines())


def test_ctrl_c_in_the_demo_says_what_the_run_kept(zoo, tmp_path, monkeypatch):
    """click turns Ctrl-C into Abort; what the interrupted run kept is still the one line shown."""
    import llama_zoo.orchestration as orchestration
    from llama_zoo.errors import Interrupted

    def interrupted(*_, **__):
        raise Interrupted("interrupted: run abc123 kept 3 of 9 samples; the same command resumes it")

    monkeypatch.setattr(orchestration, "evaluate", interrupted)
    out = zoo("demo", "--out", tmp_path / "demo.html")
    assert out.returncode == 2
    assert out.stderr.strip() == "error: interrupted: run abc123 kept 3 of 9 samples; the same command resumes it"
