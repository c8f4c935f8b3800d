"""The vqa suite through the CLI: answers made elsewhere (--predictions-file) scored by each
question's own metric, as the definitions say; shadow vision models of both architectures run end
to end, are stored, reported and compared; easy-vqa is a real external set; bad input is one line."""

from __future__ import annotations

import json

import pytest

from tests.zoo import zoo
from llama_zoo.suites.vision.synthetic import generate


def run(tmp_path, dataset, answers, *extra):
    predictions = tmp_path / "answers.jsonl"
    predictions.write_text("".join(json.dumps({"id": i, "answer": a}) + "\n" for i, a in answers.items()))
    return zoo("eval", "--model", "llama-3.2-11b-vision-instruct", "--suite", "vqa", "--dataset", dataset,
               "--predictions-file", str(predictions), "--format", "json", *extra, db=tmp_path / "r.db")


@pytest.mark.slow
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
    (("--model", "llama-3.2-11b-vision-instruct", "--suite", "vqa", "--dataset", "NO_IMAGE", "--shadow"),
     "image 'gone.png' is missing"),
    (("--model", "llama-3.2-11b-vision-instruct", "--suite", "vqa", "--dataset", "BAD_METRIC", "--shadow"),
     "unknown metric 'bleu'"),
    (("--model", "llama-3.2-11b-vision-instruct", "--suite", "vqa", "--dataset", "nocaps", "--shadow"), "no dataset 'nocaps'"),
    (("--model", "llama-4-scout-17b-16e-instruct", "--suite", "vqa", "--prompt", "meta", "--shadow"),
     "no Meta prompts are recorded for llama-4-scout-17b-16e-instruct"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "answers.jsonl").write_text('{"id": "x", "answer": "y"}\n')
    sets = {"NO_IMAGE": {"image": "gone.png", "metric": "vqa"}, "BAD_METRIC": {"image": "img.png", "metric": "bleu"}}
    for name, fields in sets.items():
        root = tmp_path / name
        root.mkdir()
        list(generate(1))[0].image.save(root / "img.png")
        (root / "questions.jsonl").write_text(json.dumps({"id": "q", "question": "?", "answers": ["a"], **fields}) + "\n")
    args = tuple(str(tmp_path / "empty") if a == "EMPTY" else str(tmp_path / "answers.jsonl") if a == "ANSWERS"
                 else str(tmp_path / a) if a in sets else a for a in args)
    out = zoo("eval", *args, db=tmp_path / "r.db")
    assert out.returncode == 2, out.stdout
    assert message in out.stderr and "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_answers_file_must_cover_the_questions(tmp_path):
    items = list(generate(4, seed=0))
    out = run(tmp_path, "synthetic", {items[0].id: "x"}, "--limit", "4")
    assert out.returncode == 2 and "no answer for 3 of 4 questions" in out.stderr
    out = run(tmp_path, "synthetic", {**{q.id: "x" for q in items}, "nope": "x"}, "--limit", "4")
    assert out.returncode == 2 and "id 'nope' is not in the dataset" in out.stderr


@pytest.mark.slow
def test_shadow_vision_models_run_are_stored_reported_and_compared(tmp_path):
    db = tmp_path / "r.db"
    runs = {}
    for model in ("llama-3.2-11b-vision-instruct", "llama-4-scout-17b-16e-instruct"):
        out = zoo("eval", "--model", model, "--suite", "vqa", "--dataset", "synthetic", "--shadow", "--limit", "12",
                  "--format", "json", db=db)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout)
        assert result["metrics"]["accuracy"]["n"] == 12 and result["weights_source"] == "shadow"
        runs[model] = result["run_id"]
    from llama_zoo.results.store import Store

    samples = list(Store.open(str(db)).iter_samples(runs["llama-4-scout-17b-16e-instruct"]))
    assert len(samples) == 12 and all(s["target"] and s["extra"]["benchmark"] for s in samples)
    report = zoo("report", "--format", "md", db=db)
    assert report.returncode == 0 and "### vqa" in report.stdout
    assert report.stdout.count("dataset=synthetic prompt=short limit=12") == 2
    compared = zoo("compare", *runs.values(), db=db)
    assert compared.returncode == 0, compared.stderr
    assert "paired bootstrap" in compared.stdout and "shadow weights" in compared.stdout


@pytest.mark.slow
def test_easy_vqa_is_a_real_set_scored_by_vqa_accuracy(tmp_path):
    easy_vqa = pytest.importorskip("easy_vqa", reason="the easy-vqa package is not installed")
    texts, answers, _ = easy_vqa.get_test_questions()
    right = {f"easy-vqa-test-{i}": answers[i].upper() for i in range(50)}  # normalised before matching
    out = run(tmp_path, "easy-vqa", right, "--limit", "50")
    assert out.returncode == 0, out.stderr
    metrics = json.loads(out.stdout)["metrics"]
    assert metrics["vqa_accuracy"]["value"] == 1.0 and metrics["vqa_accuracy"]["n"] == 50
    flipped = {k: {"yes": "no", "no": "yes"}.get(a.lower(), a) for k, a in right.items()}
    expected = sum(a not in ("yes", "no") for a in answers[:50]) / 50
    assert json.loads(run(tmp_path, "easy-vqa", flipped, "--limit", "50").stdout)["metrics"]["accuracy"]["value"] \
        == pytest.approx(expected)
    shadow = zoo("eval", "--model", "llama-3.2-11b-vision-instruct", "--suite", "vqa", "--dataset", "easy-vqa",
                 "--shadow", "--limit", "50", "--format", "json", db=tmp_path / "r.db")
    assert shadow.returncode == 0, shadow.stderr
    assert json.loads(shadow.stdout)["metrics"]["accuracy"]["n"] == 50
