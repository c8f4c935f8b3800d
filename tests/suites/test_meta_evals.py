"""Meta's per-sample evals datasets: a small copy in Meta's own layout (a local snapshot of
``meta-llama/<Model>-evals``: README front matter naming each config's parquet files), run as
``meta-evals:BENCHMARK`` on shadow models, Meta's rows imported as a published run, the two compared
row by row; the recipe's parsing and the macro average on constructed cases; bad input in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llama_zoo.suites.core.stats import macro_mean_ci
from llama_zoo.suites.meta_evals.data import BENCHMARKS
from llama_zoo.suites.meta_evals.suite import accuracy_metrics, gold_letter, normalized, parse_answer
from tests.meta_layouts import (INSTRUCT, PRETRAIN, SUBJECTS, instruct_prompt, instruct_rows, pretrain_prompt,
                                pretrain_rows, write_snapshot)
from tests.zoo import zoo

@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("meta-evals-data")
    write_snapshot(root, "Llama-3.2-1B-Instruct", {"mmlu": instruct_rows(), "gpqa": instruct_rows(6)})
    write_snapshot(root, "Llama-3.2-1B", {"mmlu": pretrain_rows()})
    return root


def env(data: Path) -> dict[str, str]:
    return {"LLAMA_ZOO_DATA": str(data)}


def run_json(out) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory):
    """A shadow run of the instruct rows and Meta's own rows imported, in one store."""
    db = tmp_path_factory.mktemp("meta-evals-db") / "r.db"
    ours = run_json(zoo("eval", "--model", INSTRUCT, "--shadow", "--suite", "meta-evals:mmlu", "--max-new-tokens", "4",
                        "--format", "json", db=db, env=env(data)))
    imported = run_json(zoo("import", "meta-evals", "meta-llama/Llama-3.2-1B-Instruct-evals", "--benchmark", "mmlu",
                            "--format", "json", db=db, env=env(data)))
    return db, ours, imported


# -- the recipe's parsing and the averages


@pytest.mark.parametrize("bench,reply,expected", [
    ("mmlu", "The answer is B because of A. The best answer is C", "C"),  # the last " X"
    ("mmlu", "No letter here.", None),
    ("mmlu_pro", "best answer is F. Wait: the best answer is H.", "H"),
    ("mmlu_pro", "The best answer is (C).", None),  # the recipe's regex wants the bare letter
    ("gpqa", "Reasoning... The best answer is D", "D"),
])
def test_instruct_answers_are_parsed_as_the_recipe_parses_them(bench, reply, expected):
    assert parse_answer(BENCHMARKS[bench].instruct, reply) == expected


def test_pretrain_mmlu_pro_takes_the_first_parenthesised_answer():
    method = BENCHMARKS["mmlu_pro"].pretrain
    assert parse_answer(method, "so the answer is (B).\n\nQ: ... the answer is (D)") == "B"
    assert method.stop == ("\n\nQ: ",) and method.max_new_tokens == 512


def test_gold_forms():
    assert gold_letter("Answer: B") == "B" and gold_letter("C") == "C" and gold_letter("(D)") == "D"
    assert gold_letter("Paris") is None
    assert normalized("(B).") == normalized(" b") == "b"


def test_macro_is_the_mean_of_subtask_means_and_its_interval_holds_it():
    values = [1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0]
    groups = ["a"] * 4 + ["b"] * 2 + ["c"] * 6
    value, (low, high) = macro_mean_ci(values, groups, seed=3)
    assert value == pytest.approx((1 + 0 + 1 / 6) / 3)
    assert np.mean(values) == pytest.approx(5 / 12) != pytest.approx(value)  # micro differs
    assert low <= value <= high and 0 <= low and high <= 1
    assert macro_mean_ci([1.0], ["a"]) == (1.0, None)
    # every group constant: nothing varies under resampling within groups
    assert macro_mean_ci([1, 1, 0, 0], ["a", "a", "b", "b"])[1] == (0.5, 0.5)


def test_metrics_put_the_reported_average_first():
    scores = [{"passed": p, "meta_is_correct": m, "subtask": s} for p, m, s in
              [(True, True, "a"), (True, False, "a"), (False, True, "b"), (False, False, "b"), (True, True, "b")]]
    mmlu = {m["name"]: m for m in accuracy_metrics(scores, BENCHMARKS["mmlu"])}
    assert list(mmlu)[0] == "macro_accuracy"
    assert mmlu["macro_accuracy"]["value"] == pytest.approx((1 + 1 / 3) / 2)
    assert mmlu["accuracy"]["value"] == pytest.approx(3 / 5) and mmlu["meta_accuracy"]["value"] == pytest.approx(3 / 5)
    assert mmlu["meta_macro_accuracy"]["value"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert mmlu["agreement_with_meta"]["value"] == pytest.approx(3 / 5)
    gpqa = [m["name"] for m in accuracy_metrics(scores, BENCHMARKS["gpqa"])]
    assert gpqa[0] == "accuracy" and "macro_accuracy" not in gpqa


# -- end to end


def test_shadow_run_stores_every_row(runs):
    db, ours, _ = runs
    metrics = ours["metrics"]
    assert ours["weights_source"] == "shadow"
    assert {"accuracy", "macro_accuracy", "meta_accuracy", "meta_macro_accuracy", "agreement_with_meta"} <= set(metrics)
    assert metrics["accuracy"]["n"] == 12
    assert metrics["meta_accuracy"]["value"] == pytest.approx(7 / 12)
    assert metrics["meta_macro_accuracy"]["value"] == pytest.approx(5 / 9)
    shown = run_json(zoo("runs", "show", ours["run_id"], "--format", "json", db=db))
    options = shown["options"]
    assert options["kind"] == "generate" and options["max_new_tokens"] == 4 and options["evals_dataset"] == \
        "meta-llama/Llama-3.2-1B-Instruct-evals"
    samples = [json.loads(line) for line in zoo("runs", "export", ours["run_id"], db=db).stdout.splitlines() if line]
    assert [s["input_ref"] for s in samples] == [f"hash-{i:02d}" for i in range(12)]
    first = samples[0]
    assert first["input"].startswith("<|start_header_id|>user") and first["target"] == "A"
    assert set(first["scores"]) >= {"passed", "parsed", "subtask", "meta_is_correct"}


def test_limit_is_respected(data, tmp_path):
    out = run_json(zoo("eval", "--model", INSTRUCT, "--shadow", "--suite", "meta-evals:gpqa", "--max-new-tokens", "2",
                       "--limit", "3", "--format", "json", db=tmp_path / "r.db", env=env(data)))
    assert out["metrics"]["accuracy"]["n"] == 3 and "macro_accuracy" not in out["metrics"]


def test_pretrained_mmlu_chooses_a_letter_by_log_likelihood(data, tmp_path):
    db = tmp_path / "r.db"
    out = run_json(zoo("eval", "--model", PRETRAIN, "--shadow", "--suite", "meta-evals:mmlu", "--limit", "4",
                       "--format", "json", db=db, env=env(data)))
    assert out["metrics"]["macro_accuracy"]["n"] == 4
    samples = [json.loads(line) for line in zoo("runs", "export", out["run_id"], db=db).stdout.splitlines() if line]
    for s in samples:
        logprobs = s["extra"]["logprobs"]
        assert set(logprobs) == set("ABCD") and s["output"] == max(logprobs, key=logprobs.get)
        assert s["scores"]["passed"] == (s["output"] == s["target"][-1]) and s["target"].startswith("Answer: ")
        assert s["input"].endswith("Answer: A")  # the stored prompt is Meta's; the letter is cut off for scoring
    shown = run_json(zoo("runs", "show", out["run_id"], "--format", "json", db=db))
    assert shown["options"]["kind"] == "choice"


def test_import_stores_metas_rows_as_a_published_run_once(runs, data):
    db, _, imported = runs
    assert imported["model_id"] == INSTRUCT and imported["samples"] == 12 and not imported["cached"]
    shown = run_json(zoo("runs", "show", imported["run_id"], "--format", "json", db=db))
    assert shown["weights_source"] == "published" and shown["suite"] == "meta-evals:mmlu"
    correct = [r["is_correct"] for r in instruct_rows()]
    subjects = [r["subtask_name"] for r in instruct_rows()]
    macro = np.mean([np.mean([c for c, s in zip(correct, subjects) if s == subject]) for subject in SUBJECTS])
    metrics = {m["name"]: m for m in shown["metrics"]}
    assert macro == pytest.approx(5 / 9)
    assert metrics["macro_accuracy"]["value"] == pytest.approx(macro) and imported["value"] == pytest.approx(macro)
    assert metrics["accuracy"]["value"] == pytest.approx(np.mean(correct))
    assert metrics["macro_accuracy"]["ci_low"] <= macro <= metrics["macro_accuracy"]["ci_high"]
    again = run_json(zoo("import", "meta-evals", "meta-llama/Llama-3.2-1B-Instruct-evals", "--benchmark", "mmlu",
                         "--format", "json", db=db, env=env(data)))
    assert again["cached"] and again["run_id"] == imported["run_id"]
    samples = [json.loads(line) for line in zoo("runs", "export", imported["run_id"], db=db).stdout.splitlines() if line]
    assert samples[0]["output"].startswith("Let me think.") and [s["scores"]["passed"] for s in samples] == correct


def test_compare_pairs_our_run_with_metas_row_by_row(runs):
    db, ours, imported = runs
    out = run_json(zoo("compare", ours["run_id"], imported["run_id"], "--format", "json", db=db))
    assert out["shared_samples"] == 12
    row = out["rows"][0]
    assert row["test"].startswith("McNemar exact") and row["b"] == pytest.approx(7 / 12)


def test_import_from_a_file_with_the_model_given(data, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps(r) + "\n" for r in instruct_rows(5)))
    out = run_json(zoo("import", "meta-evals", "meta-llama/Llama-3.2-1B-Instruct-evals", "--benchmark", "gpqa",
                       "--dataset-file", str(rows), "--model", "llama-3.2-1b-instruct", "--format", "json",
                       db=tmp_path / "r.db"))
    assert out["samples"] == 5 and out["headline"] == "accuracy"


def test_a_snapshot_directory_names_its_model(data, tmp_path):
    """DATASET may be the snapshot directory itself: the model is read from its name, and the rows
    (the same as through $LLAMA_ZOO_DATA) hash the same, so the run is the same run."""
    snapshot = data / "meta-llama" / "Llama-3.2-1B-evals"
    db = tmp_path / "r.db"
    out = run_json(zoo("import", "meta-evals", str(snapshot), "--benchmark", "mmlu", "--format", "json", db=db))
    assert out["model_id"] == PRETRAIN and out["samples"] == 8
    again = run_json(zoo("import", "meta-evals", "meta-llama/Llama-3.2-1B-evals", "--benchmark", "mmlu", "--format",
                         "json", db=db, env=env(data)))
    assert again["cached"] and again["run_id"] == out["run_id"]
    assert out["value"] == pytest.approx(0.5)  # one subject all right (the odd rows), the other all wrong


# -- bad input: one line, nothing stored


def one_line(out, *fragments: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    for fragment in fragments:
        assert fragment in out.stderr, out.stderr


def nothing_stored(db: Path) -> None:
    out = zoo("runs", "list", "--format", "json", db=db)
    assert out.returncode != 0 or json.loads(out.stdout) == []


def test_missing_required_columns_are_named(tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"input_final_prompts": ["hi"], "output_prediction_text": ["x"]}) + "\n")
    db = tmp_path / "r.db"
    one_line(zoo("eval", "--model", INSTRUCT, "--shadow", "--suite", "meta-evals:mmlu", "--dataset", str(rows), db=db),
             "input_correct_responses, is_correct")
    one_line(zoo("import", "meta-evals", "meta-llama/Llama-3.2-1B-Instruct-evals", "--benchmark", "mmlu",
                 "--dataset-file", str(rows), db=db), "input_correct_responses, is_correct")
    nothing_stored(db)


def test_unknown_benchmark_lists_the_supported_ones(data, tmp_path):
    db = tmp_path / "r.db"
    one_line(zoo("eval", "--model", INSTRUCT, "--shadow", "--suite", "meta-evals:hellaswag", db=db, env=env(data)),
             "hellaswag", "mmlu, mmlu_pro, gpqa")
    one_line(zoo("import", "meta-evals", "meta-llama/Llama-3.2-1B-Instruct-evals", "--benchmark", "nope", db=db,
                 env=env(data)), "mmlu, mmlu_pro, gpqa")
    nothing_stored(db)


def test_absent_dataset_says_how_to_get_it(data, tmp_path):
    db = tmp_path / "r.db"
    # the 3B model's dataset is neither under $LLAMA_ZOO_DATA nor reachable (the tests run offline)
    out = zoo("eval", "--model", "llama-3.2-3b-instruct", "--shadow", "--suite", "meta-evals:mmlu", db=db, env=env(data))
    one_line(out, "huggingface-cli download --repo-type dataset meta-llama/Llama-3.2-3B-Instruct-evals",
             "$LLAMA_ZOO_DATA/meta-llama/Llama-3.2-3B-Instruct-evals", "licence")
    one_line(zoo("import", "meta-evals", "meta-llama/Llama-3.2-3B-Instruct-evals", "--benchmark", "mmlu", db=db, env=env(data)),
             "huggingface-cli download --repo-type dataset meta-llama/Llama-3.2-3B-Instruct-evals", "--dataset-file FILE")
    one_line(zoo("import", "meta-evals", "someone/Unknown-Model-evals", "--benchmark", "mmlu", db=db, env=env(data)),
             "give --model")
    # a benchmark the snapshot does not hold names those it does
    one_line(zoo("eval", "--model", INSTRUCT, "--shadow", "--suite", "meta-evals:mmlu_pro", db=db, env=env(data)),
             "no config Llama-3.2-1B-Instruct-evals__mmlu_pro__details", "gpqa, mmlu")
    nothing_stored(db)


def test_prompts_are_encoded_as_meta_sent_them(shared):
    """Llama 3's own tokenizer: the chat header tokens parsed as special tokens, one BOS in front
    (added where Meta's prompt has none, never doubled), and each answer letter one token after
    the pretrain prompt cut before its own letter."""
    from transformers import AutoTokenizer

    from llama_zoo.suites.meta_evals.suite import choice_windows, encode

    tokenizer = AutoTokenizer.from_pretrained(shared / "tokenizers" / "llama3_1")
    ids = encode(tokenizer, instruct_prompt("Why?"))
    assert tokenizer.convert_ids_to_tokens(ids[:4]) == ["<|begin_of_text|>", "<|start_header_id|>", "user", "<|end_header_id|>"]
    assert encode(tokenizer, "<|begin_of_text|>hi") == [tokenizer.bos_token_id, *tokenizer("hi", add_special_tokens=False).input_ids]
    windows = choice_windows(tokenizer, pretrain_prompt("Why?", "C"), "ABCD")
    assert [tokenizer.decode(w.targets) for w in windows] == [" A", " B", " C", " D"]
    assert tokenizer.decode(windows[0].context).endswith("Answer:") and windows[0].context[0] == tokenizer.bos_token_id
