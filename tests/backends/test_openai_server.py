"""The OpenAI-compatible backend against a real local server: llama-cpp-python's, started here on
127.0.0.1 with the real SmolLM2 GGUF, an API key and an F32 KV cache (as the in-process llama.cpp
backend keeps it). Greedy HumanEval through the server's chat endpoint must give the completions
the in-process llama.cpp backend gives; a server that is down, a wrong key and a scoring suite are
one line each, and nothing is stored as completed."""

from __future__ import annotations

import json

import pytest

from tests.llama_cpp_server import KEY, free_port, llama_cpp_server
from tests.needs import needs

# one xdist worker for the module: one llama-cpp-python server for all of it
pytestmark = [needs("llama_cpp", "fastapi", "sse_starlette", "starlette_context", "pydantic_settings", "uvicorn",
                    reason="the server test needs llama-cpp-python[server] (a dev extra)"),
              pytest.mark.xdist_group("openai-server")]


@pytest.fixture(scope="module")
def server(smollm2_gguf):
    with llama_cpp_server(smollm2_gguf) as url:
        yield url


def keyed(key: str | None = KEY) -> dict[str, str | None]:
    """The environment of a call: this key (or none), and no other key a developer's shell may hold."""
    return {"LLAMA_ZOO_API_KEY": key, "OPENAI_API_KEY": None}


def outputs(zoo, run_id: str, db) -> tuple[dict, list[str]]:
    shown = json.loads(zoo("runs", "show", run_id, "--format", "json", "--samples", "10", db=db, env=keyed()).stdout)
    return shown, [s["output"] for s in shown["samples"]]


@pytest.mark.slow
def test_the_server_gives_what_in_process_llama_cpp_gives(zoo, server, smollm2_gguf, tmp_path):
    db = tmp_path / "r.db"
    common = ("eval", "--model", str(smollm2_gguf), "--suite", "humaneval", "--limit", "3", "--max-new-tokens", "48",
              "--format", "json")
    served = zoo(*common, "--backend", "openai", "--base-url", server, db=db, env=keyed())
    assert served.returncode == 0, served.stderr
    local = zoo(*common, "--backend", "llama.cpp", db=db, env=keyed())
    assert local.returncode == 0, local.stderr
    run, via_server = outputs(zoo, json.loads(served.stdout)["run_id"], db)
    _, in_process = outputs(zoo, json.loads(local.stdout)["run_id"], db)
    assert via_server == in_process and all("def " in o for o in via_server)
    assert run["weights_source"] == "server" and run["weights_ref"].startswith(server)
    assert run["runner"]["reported_models"] and KEY not in json.dumps(run)  # the key is never stored


def test_a_server_that_is_down_a_wrong_key_and_scoring_are_one_line(zoo, server, smollm2_gguf, tmp_path):
    db = tmp_path / "r.db"
    base = ("eval", "--model", str(smollm2_gguf), "--backend", "openai", "--limit", "1")
    cases = [
        (zoo(*base, "--suite", "humaneval", "--base-url", f"http://127.0.0.1:{free_port()}/v1", "--timeout", "2", db=db, env=keyed()),
         "no OpenAI-compatible server answers"),
        (zoo(*base, "--suite", "humaneval", "--base-url", server, db=db, env=keyed("wrong")), "refused the API key (HTTP 401)"),
        (zoo(*base, "--suite", "humaneval", "--base-url", server, db=db, env=keyed(None)), "refused the API key"),
        (zoo(*base, "--suite", "perplexity", "--base-url", server, db=db, env=keyed()), "the openai backend takes text only"),
        (zoo(*base, "--suite", "humaneval", db=db, env=keyed()), "--backend openai needs --base-url"),
    ]
    for result, message in cases:
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert json.loads(zoo("runs", "list", "--format", "json", db=db, env=keyed()).stdout) == []


@pytest.mark.slow
def test_an_lm_eval_generation_task_through_the_server_as_in_process(zoo, server, smollm2_gguf, tmp_path, monkeypatch):
    """lm-eval tasks that only generate run on a text backend too: the same answers as llama.cpp in
    this process (the same GGUF, greedy)."""
    from tests.suites.test_lm_eval_tasks import OFFLINE, _write_tasks

    _write_tasks(tmp_path / "tasks")
    db = tmp_path / "r.db"
    common = ("eval", "--model", str(smollm2_gguf), "--suite", "lm-eval:zoo_gen", "--lm-eval-include",
              str(tmp_path / "tasks"), "--format", "json")
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    served = zoo(*common, "--backend", "openai", "--base-url", server, db=db, env=keyed())
    assert served.returncode == 0, served.stderr
    local = zoo(*common, "--backend", "llama.cpp", db=db, env=keyed())
    assert local.returncode == 0, local.stderr
    _, via_server = outputs(zoo, json.loads(served.stdout)["run_id"], db)
    _, in_process = outputs(zoo, json.loads(local.stdout)["run_id"], db)
    assert via_server == in_process and len(via_server) == 10
    refused = zoo("eval", "--model", str(smollm2_gguf), "--suite", "lm-eval:zoo_mc", "--lm-eval-include",
                  str(tmp_path / "tasks"), "--backend", "openai", "--base-url", server, db=db, env=keyed())
    assert refused.returncode == 2 and "needs log-likelihoods, which a text-only backend does not give" in refused.stderr
