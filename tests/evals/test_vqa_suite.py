"""The vqa suite through the CLI with answers made elsewhere (--predictions-file): each question is
scored by its own metric, as the definitions say; bad input is one line. (Model runs on shadow
vision models come with #13's processors; until then the suite takes hub or local weights only.)"""

from __future__ import annotations

import json

import pytest

from tests.cli.test_eval_cli import zoo
from llama_zoo.evals.vision.synthetic import generate


def run(tmp_path, dataset, answers, *extra):
    predictions = tmp_path / "answers.jsonl"
    predictions.write_text("".join(json.dumps({"id": i, "answer": a}) + "\n" for i, a in answers.items()))
    return zoo("eval", "--model", "llama-3.2-11b-vision-instruct", "--suite", "vqa", "--dataset", dataset,
               "--predictions-file", str(predictions), "--format", "json", *extra, db=tmp_path / "r.db")


def test_the_right_answers_score_one_and_wrong_ones_zero(tmp_path):
    items = list(generate(24, seed=0))
    right = {q.id: q.answers[0] for q in items}
    out = run(tmp_path, "synthetic", right, "--limit", "24")
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)["metrics"]
    assert metrics["accuracy"]["value"] == 1.0 and metrics["accuracy"]["n"] == 24
    assert {"vqa_accuracy", "anls", "relaxed_accuracy", "mcq_accuracy"} <= set(metrics)
    wrong = {q.id: "(D)" if q.metric == "mcq" and q.answers[0] != "D" else "(A)" if q.metric == "mcq" else "zzzz" for q in items}
    metrics = json.loads(run(tmp_path, "synthetic", wrong, "--limit", "24").stdout)["metrics"]
    assert metrics["accuracy"]["value"] == 0.0


def test_golden_cases_score_as_defined(tmp_path):
    base = list(generate(1, seed=0))[0]
    truth = "abcdefghijklmnopqrstuvwxyz" * 3 + "abcdefghijklmnopqrstuv"
    questions = [
        ("relaxed", ["0.76"], [], "75%", 1.0),  # 0.75 is within 5% of 0.76
        ("anls", [truth], [], truth[:49] + "#" * 51, 0.0),  # similarity 0.49: under the threshold
        ("vqa", ["two"] * 3 + ["three"] * 7, [], "2", 0.9),  # three of ten annotators, leave-one-out
        ("vqa", ["two"] * 4 + ["three"] * 6, [], "2", 1.0),
        ("mcq", ["B"], ["red", "blue", "green"], "The answer is (B)", 1.0),
    ]
    root = tmp_path / "golden"
    root.mkdir()
    base.image.save(root / "img.png")
    (root / "questions.jsonl").write_text("".join(
        json.dumps({"id": f"q{i}", "image": "img.png", "question": "?", "answers": a, "metric": m,
                    **({"options": o} if o else {})}) + "\n" for i, (m, a, o, _, _) in enumerate(questions)))
    out = run(tmp_path, str(root), {f"q{i}": q[3] for i, q in enumerate(questions)})
    assert out.returncode == 0, out.stderr
    from llama_zoo.results.store import Store

    stored = sorted(Store.open(str(tmp_path / "r.db")).iter_samples(json.loads(out.stdout)["run_id"]), key=lambda s: s["idx"])
    assert [s["scores"]["score"] for s in stored] == pytest.approx([q[4] for q in questions])


@pytest.mark.parametrize("args,message", [
    (("--model", "llama-3.1-8b", "--suite", "vqa"), "llama-3.1-8b is a text-only model"),
    (("--model", "llama-3.2-11b-vision-instruct", "--suite", "vqa", "--dataset", "EMPTY", "--predictions-file", "ANSWERS"),
     "no questions.jsonl"),
    (("--model", "llama-3.2-11b-vision-instruct", "--suite", "vqa", "--shadow"), "the vqa suite takes hub, local weights only"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "answers.jsonl").write_text('{"id": "x", "answer": "y"}\n')
    args = tuple(str(tmp_path / "empty") if a == "EMPTY" else str(tmp_path / "answers.jsonl") if a == "ANSWERS" else a
                 for a in args)
    out = zoo("eval", *args, db=tmp_path / "r.db")
    assert out.returncode == 2, out.stdout
    assert message in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_answers_file_must_cover_the_questions(tmp_path):
    items = list(generate(4, seed=0))
    out = run(tmp_path, "synthetic", {items[0].id: "x"}, "--limit", "4")
    assert out.returncode == 2 and "no answer for 3 of 4 questions" in out.stderr
    out = run(tmp_path, "synthetic", {**{q.id: "x" for q in items}, "nope": "x"}, "--limit", "4")
    assert out.returncode == 2 and "id 'nope' is not in the dataset" in out.stderr
