"""A model x suite matrix through `llama-zoo eval`: one run per cell, a refused cell recorded while
the others complete, the same matrix again all cache hits, registry globs and --where to choose
models, and one clear line for a selection that matches nothing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from llama_zoo.orchestration.matrix import select_models
from tests.zoo import zoo

MATRIX = ("eval", "--model", "llama-3.2-1b", "--model", "llama-2-7b", "--model", "llama-3.2-11b-vision-instruct",
          "--suite", "perplexity", "--suite", "vqa", "--shadow", "--limit", "2", "--format", "json")


@pytest.mark.slow
def test_a_refused_cell_is_recorded_and_the_matrix_goes_on(tmp_path):
    db = tmp_path / "r.db"
    first = zoo(*MATRIX, db=db)
    assert first.returncode == 1, first.stderr  # some cells failed: the command says so
    cells = json.loads(first.stdout)
    assert [(c["model"], c["suite"], c["status"]) for c in cells] == [
        ("llama-3.2-1b", "perplexity", "completed"), ("llama-3.2-1b", "vqa", "failed"),
        ("llama-2-7b", "perplexity", "completed"), ("llama-2-7b", "vqa", "failed"),
        ("llama-3.2-11b-vision-instruct", "perplexity", "completed"), ("llama-3.2-11b-vision-instruct", "vqa", "completed")]
    assert "text-only model" in cells[1]["error"] and cells[0]["headline"] == "word_perplexity"
    assert all(c["weights_source"] == "shadow" for c in cells if c["status"] == "completed")
    runs = json.loads(zoo("runs", "list", "--format", "json", db=db).stdout)
    assert len(runs) == 4  # one run per completed cell, each once

    again = json.loads(zoo(*MATRIX, db=db).stdout)
    assert [c["status"] for c in again] == ["cached", "failed", "cached", "failed", "cached", "cached"]
    assert [c["run_id"] for c in again if c["run_id"]] == [c["run_id"] for c in cells if c["run_id"]]
    assert len(json.loads(zoo("runs", "list", "--format", "json", db=db).stdout)) == 4


@pytest.mark.slow
def test_fail_fast_stops_at_the_first_failed_cell(tmp_path):
    out = zoo("eval", "--model", "llama-2-7b", "--model", "llama-3.2-1b", "--suite", "vqa", "--suite", "perplexity",
              "--shadow", "--limit", "2", "--fail-fast", db=tmp_path / "r.db")
    assert out.returncode == 2 and "text-only model" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert json.loads(zoo("runs", "list", "--format", "json", db=tmp_path / "r.db").stdout) == []


def test_models_by_glob_and_by_facts():
    assert select_models([], ["llama-3.1-*"], None) == ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b",
                                                         "llama-3.1-8b-instruct", "llama-3.1-70b-instruct",
                                                         "llama-3.1-405b-instruct"]
    small_base = select_models([], ["llama-3.*"], "params < 10B and not instruct")
    assert small_base and "llama-3.1-8b" in small_base and "llama-3.1-8b-instruct" not in small_base
    assert "llama-3.1-70b" not in small_base
    assert select_models(["code-llama-7b"], ["llama-3.1-8*"], None) == ["code-llama-7b", "llama-3.1-8b",
                                                                        "llama-3.1-8b-instruct"]


@pytest.mark.parametrize("args,message", [
    (("--models", "llama-9-*"), "--models 'llama-9-*' matches no registry model"),
    (("--models", "llama-3.1-*", "--where", "params > 1000B"), "matches no registry model among --models llama-3.1-*"),
    (("--where", "params >"), "--where"),
])
def test_a_selection_that_matches_nothing_is_one_line(args, message, tmp_path):
    out = zoo("eval", *args, "--suite", "perplexity", "--shadow", db=tmp_path / "r.db")
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1


@pytest.fixture
def built(monkeypatch):
    """The model ids each hf backend was built for, in order (the real constructor runs)."""
    from llama_zoo.backends.hf import HFBackend

    ids: list[str] = []
    init = HFBackend.__init__

    def counted(self, spec, source, **kwargs):
        ids.append(spec.id)
        init(self, spec, source, **kwargs)

    monkeypatch.setattr(HFBackend, "__init__", counted)
    return ids


@pytest.mark.slow
def test_consecutive_cells_of_one_model_load_it_once_and_score_as_alone(built, tmp_path):
    common = ("--shadow", "--limit", "2", "--max-new-tokens", "4", "--format", "json")
    cells = json.loads(zoo("eval", "--model", "code-llama-7b", "--model", "llama-2-7b", "--suite", "perplexity",
                           "--suite", "humaneval", *common, db=tmp_path / "m.db").stdout)
    assert [c["status"] for c in cells] == ["completed"] * 4
    assert built == ["code-llama-7b", "llama-2-7b"]  # two models, four cells
    for cell in cells:  # a backend handed on scores what a freshly loaded one scores
        own = common if cell["suite"] == "humaneval" else common[:3] + common[5:]  # --max-new-tokens is humaneval's
        alone = zoo("eval", "--model", cell["model"], "--suite", cell["suite"], *own,
                    db=tmp_path / f"{cell['model']}-{cell['suite']}.db")
        assert json.loads(alone.stdout)["metrics"][cell["headline"]]["value"] == cell["value"], alone.stderr


@pytest.mark.slow
def test_a_run_that_fails_gives_its_backend_up(built, tmp_path):
    from llama_zoo.orchestration import Kept, RunRequest, evaluate
    from llama_zoo.results.store import Store

    store, kept = Store.open(str(tmp_path / "r.db")), Kept()
    request = RunRequest("llama-2-7b", "perplexity", shadow=True, limit=1, context=64)

    def interrupt(*_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(request, store, interrupt, kept)
    evaluate(dataclasses.replace(request, limit=2), store, None, kept)  # built again: the failed run's was dropped
    evaluate(dataclasses.replace(request, limit=3), store, None, kept)  # handed on
    evaluate(dataclasses.replace(request, limit=3, context=128), store, None, kept)  # another context: built anew
    assert built == ["llama-2-7b"] * 3
