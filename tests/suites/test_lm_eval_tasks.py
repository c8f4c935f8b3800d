"""lm-eval tasks through llama-zoo: a local multiple-choice task and a local generate_until task
(their data written by the test; the hub is unreachable) on a shadow checkpoint, held equal per
document and in aggregate to ``lm_eval.simple_evaluate`` with lm-eval's own ``hf`` model on the
same checkpoint in float32; that lm-eval run's output imported, shown by ``report`` and paired
with llama-zoo's run by ``compare``; and the bad inputs, one line each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("lm_eval", reason="lm-eval tasks need the lm-eval package (a dev extra)")
# one xdist worker for the module: lm-eval's own run and ours are made once (module fixtures `work`, `ours`)
pytestmark = pytest.mark.xdist_group("lm-eval")

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
MC = [("What color is the sky?", ["blue", "green", "red"], 0), ("2+2=?", ["3", "4", "5"], 1),
      ("Capital of France?", ["Paris", "Rome", "Berlin"], 0), ("Opposite of hot?", ["warm", "cold", "big"], 1),
      ("Largest planet?", ["Mars", "Earth", "Jupiter"], 2), ("Water freezes at?", ["0 C", "50 C", "100 C"], 0),
      ("A baby cat is a?", ["puppy", "kitten", "calf"], 1), ("Sun rises in the?", ["east", "west", "north"], 0),
      ("Bees make?", ["milk", "silk", "honey"], 2), ("Ice is?", ["cold", "hot", "loud"], 0),
      ("Spiders have how many legs?", ["six", "eight", "ten"], 1), ("Grass is?", ["blue", "red", "green"], 2)]
GEN = [("1+1", "2"), ("2+3", "5"), ("10-4", "6"), ("3*3", "9"), ("8/2", "4"), ("7+1", "8"), ("9-9", "0"),
       ("2*2", "4"), ("5+5", "10"), ("6/3", "2")]


def _task_yaml(name: str, data: Path, output_type: str, prompt: str, rest: str, version: float = 1.0) -> str:
    """A task over a local JSON-lines file (an absolute path: lm-eval reads data_files from the
    working directory, not the YAML's)."""
    return (f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\n"
            f"test_split: test\noutput_type: {output_type}\ndoc_to_text: \"{prompt}\"\n{rest}"
            f"metadata: {{version: {version}}}\n")


def _write_tasks(tasks: Path) -> None:
    tasks.mkdir()
    mc, gen = tasks / "mc.jsonl", tasks / "gen.jsonl"
    mc.write_text("".join(json.dumps({"question": q, "choices": c, "label": a}) + "\n" for q, c, a in MC))
    gen.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in GEN))
    acc = "  - {metric: acc, aggregation: mean, higher_is_better: true}\n"
    (tasks / "zoo_mc.yaml").write_text(_task_yaml(
        "zoo_mc", mc, "multiple_choice", "Question: {{question}}\\nAnswer:",
        "doc_to_choice: \"{{choices}}\"\ndoc_to_target: label\nmetric_list:\n" + acc
        + "  - {metric: acc_norm, aggregation: mean, higher_is_better: true}\n"))
    # MMLU's form: the choices are letters, one token each after the same context (one forward pass)
    (tasks / "zoo_letters.yaml").write_text(_task_yaml(
        "zoo_letters", mc, "multiple_choice",
        "{{question}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nC. {{choices[2]}}\\nAnswer:",
        "doc_to_choice: [\"A\", \"B\", \"C\"]\ndoc_to_target: label\nmetric_list:\n" + acc))
    (tasks / "zoo_gen.yaml").write_text(_task_yaml(
        "zoo_gen", gen, "generate_until", "Q: {{question}}\\nA:",
        "doc_to_target: \"{{answer}}\"\n"
        "generation_kwargs: {until: [\"\\n\", \"Q:\"], max_gen_toks: 12, do_sample: false, temperature: 0.0}\n"
        "metric_list:\n  - {metric: exact_match, aggregation: mean, higher_is_better: true, ignore_case: true, "
        "ignore_punctuation: false}\n", version=2.0))


@pytest.fixture(scope="module")
def work(tmp_path_factory, shared):
    """A shadow Llama 3.2 1B saved as a checkpoint with the real Llama 3.1 tokenizer, two task YAMLs
    with their data, and lm-eval's own run of both (its hf model, float32) written as lm-eval writes it."""
    import torch
    from transformers import AutoTokenizer

    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.backends.weights import WeightsSource, load_model

    root = tmp_path_factory.mktemp("lm-eval")
    model = load_model(load_catalog().get("llama-3.2-1b"), WeightsSource("shadow", seed=0), "cpu", torch.float32)
    model.save_pretrained(root / "ckpt")
    AutoTokenizer.from_pretrained(shared / "tokenizers" / "llama3_1").save_pretrained(root / "ckpt")
    _write_tasks(root / "tasks")
    script = f"""
import json, lm_eval
from lm_eval.loggers import EvaluationTracker
from lm_eval.tasks import TaskManager
tracker = EvaluationTracker(output_path={str(root / 'out')!r})
res = lm_eval.simple_evaluate(model="hf", model_args="pretrained={root / 'ckpt'},dtype=float32", device="cpu",
                              batch_size=1, tasks=["zoo_mc", "zoo_letters", "zoo_gen"], log_samples=True, evaluation_tracker=tracker,
                              task_manager=TaskManager(include_path={str(root / 'tasks')!r}, include_defaults=False))
samples = res.pop("samples")
tracker.save_results_aggregated(results=res, samples=samples)
for task in res["configs"]:
    tracker.save_results_samples(task_name=task, samples=samples[task])
json.dump({{"results": res["results"], "samples": samples}}, open({str(root / 'reference.json')!r}, "w"), default=str)
"""
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                         env={**os.environ, **OFFLINE}, cwd=root)
    assert ran.returncode == 0, ran.stderr[-2000:]
    return root, json.loads((root / "reference.json").read_text())


@pytest.fixture(scope="module")
def ours(zoo, work):
    root, _ = work
    db = root / "zoo.db"
    out = zoo("eval", "--model", str(root / "ckpt"), "--suite", "lm-eval:zoo_mc", "--suite", "lm-eval:zoo_letters",
              "--suite", "lm-eval:zoo_gen",
              "--lm-eval-include", str(root / "tasks"), "--dtype", "float32", "--format", "json", db=db, env=OFFLINE)
    assert out.returncode == 0, out.stderr
    return db, {c["suite"].split(":")[1]: c for c in json.loads(out.stdout)}


def _stored(db, run_id: str):
    from llama_zoo.results.store import Store

    store = Store.open(str(db))
    return store.get(run_id), {s["idx"]: s for s in store.iter_samples(run_id)}


@pytest.mark.slow
def test_the_same_documents_and_metrics_as_lm_eval_with_its_hf_model(work, ours):
    _, reference = work
    db, cells = ours
    for task, n in (("zoo_mc", len(MC)), ("zoo_letters", len(MC)), ("zoo_gen", len(GEN))):
        run, samples = _stored(db, cells[task]["run_id"])
        assert run["status"] == "completed" and len(samples) == n
        expected = reference["results"][task]
        metrics = {m["name"]: m for m in run["metrics"]}
        for key, value in expected.items():
            name, _, _filter = key.partition(",")
            if not _filter or name.endswith("_stderr") or name in ("alias", "name", "sample_len"):
                continue
            assert metrics[key]["value"] == pytest.approx(value, abs=1e-12), key
            assert metrics[key]["stderr"] == pytest.approx(expected[f"{name}_stderr,{_filter}"], abs=1e-12), key
            assert metrics[key]["n"] == n
        for doc in reference["samples"][task]:
            mine = samples[doc["doc_id"]]["scores"]
            for name in doc["metrics"]:
                assert mine["metrics"][f"{name},{doc['filter']}"] == pytest.approx(float(doc[name])), (task, doc["doc_id"])
            assert mine["doc_hash"] == doc["doc_hash"]
            filtered = [f[doc["filter"]] for f in mine["filtered"]]
            if task != "zoo_gen":  # per choice: the log-likelihood lm-eval computed, to float32 precision
                assert [ll for ll, _ in filtered] == pytest.approx([float(ll) for ll, _ in doc["filtered_resps"]], abs=1e-4)
            else:  # the generated answer, cut at the stop strings, as lm-eval's hf model made it
                assert filtered == doc["filtered_resps"]
    assert run["options"]["headline"] == {"metric": "exact_match,none", "lower_is_better": False}


@pytest.mark.slow
def test_lm_evals_own_output_imported_is_reported_and_paired_without_a_difference(zoo, work, ours):
    root, reference = work
    db, cells = ours
    out = zoo("import", "lm-eval", str(root / "out"), "--format", "json", db=db, env=OFFLINE)
    assert out.returncode == 0, out.stderr
    imported = {r["task"]: r for r in json.loads(out.stdout)}
    assert imported["zoo_mc"]["samples"] == len(MC) and not imported["zoo_mc"]["cached"]
    assert imported["zoo_mc"]["model_id"] == json.loads(zoo("runs", "show", cells["zoo_mc"]["run_id"], "--format",
                                                            "json", db=db, env=OFFLINE).stdout)["model_id"]
    again = json.loads(zoo("import", "lm-eval", str(root / "out"), "--format", "json", db=db, env=OFFLINE).stdout)
    assert all(r["cached"] for r in again)  # stored once

    run, _ = _stored(db, imported["zoo_mc"]["run_id"])
    assert run["weights_source"] == "imported" and run["runner"]["model"] == "hf"
    assert run["runner"]["lm_eval_version"] and "pretrained" in run["runner"]["model_args"]
    assert {m["name"]: m["value"] for m in run["metrics"]}["acc,none"] == reference["results"]["zoo_mc"]["acc,none"]

    board = zoo("report", "--format", "md", db=db, env=OFFLINE).stdout
    section = board[board.index("### lm-eval:zoo_mc"):]
    assert "| imported |" in section and "| local |" in section

    for task in ("zoo_mc", "zoo_gen"):
        compared = zoo("compare", cells[task]["run_id"], imported[task]["run_id"], "--format", "json", db=db, env=OFFLINE)
        assert compared.returncode == 0, compared.stderr
        result = json.loads(compared.stdout)
        assert result["shared_samples"] == len(MC if task == "zoo_mc" else GEN)
        (row,) = result["rows"]
        assert row["difference"] == 0 and row["p_value"] == 1.0 and not row["significant"]


def test_an_unknown_task_is_one_line_with_lm_evals_nearest_names(zoo, tmp_path):
    out = zoo("eval", "--model", "llama-3.2-1b", "--shadow", "--suite", "lm-eval:arc_chalenge", db=tmp_path / "r.db", env=OFFLINE)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "unknown lm-eval task 'arc_chalenge'; did you mean arc_challenge" in out.stderr


def test_a_task_whose_data_is_on_the_unreachable_hub_is_one_line(zoo, tmp_path):
    out = zoo("eval", "--model", "llama-3.2-1b", "--shadow", "--suite", "lm-eval:arc_easy", db=tmp_path / "r.db", env=OFFLINE)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "lm-eval task arc_easy cannot load its data" in out.stderr


def test_a_task_read_by_a_datasets_loader_from_local_files_passes_offline_on_an_empty_cache(tmp_path, monkeypatch):
    """``dataset_path: json`` names ``datasets``' own loader, not a hub dataset: offline, with nothing
    cached, the check before the model loads lets it through (it held only once a cache existed)."""
    import datasets.config

    from llama_zoo.suites.lm_eval_tasks.suite import check_task_data

    _write_tasks(tmp_path / "tasks")
    for name, value in OFFLINE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "empty-cache")
    check_task_data("zoo_gen", None, None, {"lm_eval_include": str(tmp_path / "tasks")})


@pytest.mark.parametrize("make", ["empty", "not-json", "missing"])
def test_a_path_that_is_not_lm_eval_output_is_one_line(zoo, make, tmp_path):
    path = tmp_path / "out"
    if make == "empty":
        path.mkdir()
    elif make == "not-json":
        path.mkdir()
        (path / "results_2026.json").write_text("{not json")
    out = zoo("import", "lm-eval", str(path), db=tmp_path / "r.db", env=OFFLINE)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert ("is not lm-eval output" if make != "missing" else "no such file or directory") in out.stderr


@pytest.mark.slow
def test_a_group_runs_as_its_tasks_and_options_make_other_runs(zoo, work, ours):
    root, _ = work
    db, cells = ours
    (root / "tasks" / "zoo_group.yaml").write_text("group: zoo_group\ntask: [zoo_mc, zoo_gen]\n"
                                                   "aggregate_metric_list:\n  - {metric: acc, aggregation: mean}\n")
    args = ("eval", "--model", str(root / "ckpt"), "--lm-eval-include", str(root / "tasks"), "--dtype", "float32",
            "--format", "json")
    grouped = json.loads(zoo(*args, "--suite", "lm-eval:zoo_group", db=db, env=OFFLINE).stdout)
    assert [(c["suite"], c["status"]) for c in grouped] == [("lm-eval:zoo_mc", "cached"), ("lm-eval:zoo_gen", "cached")]
    base, _ = _stored(db, cells["zoo_mc"]["run_id"])
    assert base["options"]["task_version"] == 1.0 and len(base["options"]["task_config_hash"]) == 64
    assert base["options"]["num_fewshot"] == 0 and base["options"]["apply_chat_template"] is False

    for extra, check in ((("--num-fewshot", "2"), lambda s: s["input"].count("Question:") == 3),
                         (("--apply-chat-template",), lambda s: "<|start_header_id|>user<|end_header_id|>" in s["input"])):
        out = zoo(*args, "--suite", "lm-eval:zoo_mc", *extra, db=db, env=OFFLINE)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert not result["cached"] and result["run_id"] != cells["zoo_mc"]["run_id"]
        run, samples = _stored(db, result["run_id"])
        assert all(check(s) for s in samples.values()), samples[0]["input"]
        assert len(samples) == len(MC)


@pytest.mark.slow
def test_llama_cpp_answers_lm_eval_as_transformers_does(zoo, work, smollm2_f32_gguf):
    """The real SmolLM2-135M as an F32 GGUF (exactly the weights transformers holds): llama.cpp and
    transformers give every choice the same log-likelihood to float32 precision (4e-5 the most,
    measured), through each engine's own tokenizer, and so the same answers."""
    pytest.importorskip("llama_cpp", reason="the llama.cpp backend needs llama-cpp-python (a dev extra)")
    root, _ = work
    db = root / "engines.db"
    runs = {}
    for backend in ("hf", "llama.cpp"):
        out = zoo("eval", "--model", str(smollm2_f32_gguf), "--suite", "lm-eval:zoo_mc", "--lm-eval-include",
                  str(root / "tasks"), "--backend", backend, "--format", "json", db=db, env=OFFLINE)
        assert out.returncode == 0, out.stderr
        runs[backend] = _stored(db, json.loads(out.stdout)["run_id"])[1]
    assert len(runs["hf"]) == len(MC)
    for idx, sample in runs["hf"].items():
        other = runs["llama.cpp"][idx]["scores"]
        lls = [f["none"][0] for f in sample["scores"]["filtered"]]
        assert [f["none"][0] for f in other["filtered"]] == pytest.approx(lls, abs=2e-4)
        assert other["metrics"] == sample["scores"]["metrics"]


def test_single_token_choices_after_one_context_are_one_request(shared):
    """MMLU's letters: one next-token request for the choices (lm-eval's logits cache does the
    same), while choices of several tokens stay one window each."""
    from transformers import AutoTokenizer

    from llama_zoo.suites.lm_eval_tasks.adapter import ZooLM
    from llama_zoo.backends.base import NextTokenRequest

    lm = ZooLM(AutoTokenizer.from_pretrained(shared / "tokenizers" / "llama3_1"), 2048)
    context = "Question: 2+2=?\nA. 3\nB. 4\nC. 5\nAnswer:"
    windows = [w for letter in "ABC" for w in lm.requests_for("loglikelihood", (context, f" {letter}"))]
    shared_request = lm.shared_context(windows)
    assert isinstance(shared_request, NextTokenRequest) and len(shared_request.candidates) == 3
    assert shared_request.prompt == windows[0].context and shared_request.candidates[1] == windows[1].targets[0]
    words = [w for choice in ("blue sky", "green grass") for w in lm.requests_for("loglikelihood", (context, f" {choice}"))]
    assert lm.shared_context(words) is None


# -- RULER: tasks that generate their documents, sized by the evaluated model's tokenizer

RULER_METADATA = {"max_seq_lengths": [1024]}
RULER_LIMIT = 2  # documents: about 3 s each on a CPU at 1,024 tokens


def _ruler_packages() -> None:
    for package in ("wonderwords", "nltk"):
        pytest.importorskip(package, reason=f"lm-eval's RULER tasks need {package}: pip install 'llama-zoo[ruler]'")


@pytest.fixture(scope="module")
def ruler_reference(tmp_path_factory, smollm2_dir):
    """lm-eval's own run of niah_single_1 on the real SmolLM2 (its hf model, float32): the model's
    path in model_args becomes the task's tokenizer, as `lm_eval --model_args pretrained=...` does."""
    _ruler_packages()
    root = tmp_path_factory.mktemp("ruler")
    # the task manager simple_evaluate would build (model_args | metadata as the tasks' metadata), over
    # lm-eval's ruler folder alone: indexing every task's YAML is about 18 s of CPU
    script = f"""
import json, os, nltk, lm_eval
from lm_eval.tasks import TaskManager
nltk.download = lambda *a, **k: False  # lm-eval's RULER module fetches punkt_tab on import; niah_single_1 never uses it
model_args = {{"pretrained": {str(smollm2_dir)!r}, "dtype": "float32"}}
tasks = TaskManager(include_path=os.path.join(os.path.dirname(lm_eval.__file__), "tasks", "ruler"), include_defaults=False,
                    metadata=model_args | {RULER_METADATA!r})
res = lm_eval.simple_evaluate(model="hf", model_args=model_args, device="cpu", batch_size=1, tasks=["niah_single_1"],
                              metadata={RULER_METADATA!r}, limit={RULER_LIMIT}, log_samples=True, task_manager=tasks)
json.dump({{"results": res["results"], "samples": res["samples"]}}, open({str(root / 'reference.json')!r}, "w"), default=str)
"""
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                         env={**os.environ, **OFFLINE}, cwd=root)
    assert ran.returncode == 0, ran.stderr[-2000:]
    return root, json.loads((root / "reference.json").read_text())


@pytest.mark.slow
def test_ruler_niah_single_1_on_the_real_model_is_lm_evals_own(zoo, ruler_reference, smollm2_dir):
    """The same generated documents, the same answers (filtered responses) and scores per document,
    and the same aggregate at the one length run; lm-eval's -1 for its default length (not run) is
    not stored, and the headline is the length run."""
    root, reference = ruler_reference
    db = root / "zoo.db"
    out = zoo("eval", "--model", str(smollm2_dir), "--suite", "lm-eval:niah_single_1", "--lm-eval-metadata",
              json.dumps(RULER_METADATA), "--limit", str(RULER_LIMIT), "--dtype", "float32", "--format", "json",
              db=db, env=OFFLINE)
    assert out.returncode == 0, out.stderr
    run, samples = _stored(db, json.loads(out.stdout)["run_id"])
    assert run["status"] == "completed" and len(samples) == RULER_LIMIT
    assert run["options"]["headline"] == {"metric": "1024,none", "lower_is_better": False}
    assert run["options"]["lm_eval_tokenizer"] == str(smollm2_dir)
    assert run["options"]["lm_eval_metadata"] == RULER_METADATA and run["options"]["sequence_lengths"] == [1024]

    expected = reference["results"]["niah_single_1"]
    assert expected["4096,none"] == -1  # lm-eval's placeholder for its default length
    metrics = {m["name"]: m for m in run["metrics"]}
    assert set(metrics) == {"1024,none"}
    assert metrics["1024,none"]["value"] == pytest.approx(expected["1024,none"], abs=1e-12)
    assert metrics["1024,none"]["stderr"] == pytest.approx(expected["1024_stderr,none"], abs=1e-12)
    assert metrics["1024,none"]["n"] == RULER_LIMIT
    assert metrics["1024,none"]["ci_low"] <= metrics["1024,none"]["value"] <= metrics["1024,none"]["ci_high"]

    assert len(reference["samples"]["niah_single_1"]) == RULER_LIMIT
    for doc in reference["samples"]["niah_single_1"]:
        mine = samples[doc["doc_id"]]["scores"]
        assert mine["doc_hash"] == doc["doc_hash"]  # the same generated document: haystack, needle, prompt
        assert [f[doc["filter"]] for f in mine["filtered"]] == doc["filtered_resps"], doc["doc_id"]
        for name in doc["metrics"]:
            assert mine["metrics"][f"{name},{doc['filter']}"] == pytest.approx(float(doc[name])), (name, doc["doc_id"])
        assert mine["score"] == pytest.approx(float(doc["1024"]))


def test_bad_lm_eval_metadata_is_one_line_and_nothing_is_stored(zoo, tmp_path):
    db = tmp_path / "r.db"
    for given, said in (("{bad", "--lm-eval-metadata is not JSON"), ("[1024]", "must be a JSON object, not list")):
        out = zoo("eval", "--model", "llama-3.2-1b", "--shadow", "--suite", "lm-eval:niah_single_1",
                  "--lm-eval-metadata", given, db=db, env=OFFLINE)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert said in out.stderr
    listed = zoo("runs", "list", "--format", "json", db=db, env=OFFLINE)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def generate_samples(num_samples=500, skip=()):  # a RULER generator, as its module names it
    return [i for i in range(num_samples) if i not in skip]


def _ruler_build(skip=()):  # a RULER task's custom_dataset: calls its module's generator for 500
    return generate_samples(num_samples=500, skip=skip)


def test_a_capped_ruler_build_makes_only_the_first_documents_and_gives_up_on_a_skip():
    from llama_zoo.suites.lm_eval_tasks import ruler

    capped = ruler.documents_capped(_ruler_build, 3)
    assert capped() == [0, 1, 2]
    assert _ruler_build() == list(range(500))  # the module's own generator is put back
    with pytest.raises(ruler.ShortOfDocuments):  # a skipped document: the next ones are not lm-eval's
        capped(skip={1})
    assert ruler.documents_capped(_ruler_build, 600)() == list(range(500))


@pytest.mark.slow  # builds a RULER task from lm-eval's whole index: seconds
def test_ruler_gets_the_runs_tokenizer_recorded_unless_the_metadata_names_one(zoo, tmp_path, shared):
    """A shadow model with a real tokenizer directory: lm-eval sizes the documents with that
    tokenizer, and the run records it; naming a tokenizer in the metadata supplies none."""
    _ruler_packages()
    tokenizer = shared / "tokenizers" / "llama3_1"
    db = tmp_path / "r.db"
    args = ("eval", "--model", "llama-3.2-1b", "--shadow", "--tokenizer", str(tokenizer), "--suite",
            "lm-eval:niah_single_1", "--limit", "1", "--format", "json")
    out = zoo(*args, "--lm-eval-metadata", '{"max_seq_lengths": [512]}', db=db, env=OFFLINE)
    assert out.returncode == 0, out.stderr
    run, samples = _stored(db, json.loads(out.stdout)["run_id"])
    assert run["options"]["lm_eval_tokenizer"] == str(tokenizer)
    assert run["options"]["headline"]["metric"] == "512,none" and len(samples) == 1

    named = json.dumps({"max_seq_lengths": [512], "tokenizer": str(tokenizer)})
    out = zoo(*args, "--lm-eval-metadata", named, db=db, env=OFFLINE)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    other, _ = _stored(db, result["run_id"])
    assert not result["cached"] and "lm_eval_tokenizer" not in other["options"]
    assert other["options"]["lm_eval_metadata"]["tokenizer"] == str(tokenizer)


def test_a_ruler_essay_task_without_nltk_data_is_one_line_naming_the_download(zoo, tmp_path, monkeypatch):
    _ruler_packages()
    from llama_zoo.suites.lm_eval_tasks import ruler

    monkeypatch.setattr(ruler, "has_punkt", lambda: False)  # whatever this machine has installed
    out = zoo("eval", "--model", "llama-3.2-1b", "--shadow", "--suite", "lm-eval:niah_single_2", db=tmp_path / "r.db",
              env=OFFLINE)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "python -m nltk.downloader punkt_tab" in out.stderr


def test_a_ruler_length_beyond_the_runs_context_is_one_line(zoo, tmp_path, shared):
    _ruler_packages()
    out = zoo("eval", "--model", "llama-3.2-1b", "--shadow", "--tokenizer", shared / "tokenizers" / "llama3_1",
              "--suite", "lm-eval:niah_single_1", "--context", "2048", db=tmp_path / "r.db", env=OFFLINE)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "up to 4096 tokens" in out.stderr and "--context 4096" in out.stderr  # lm-eval's default length
