"""Local visual question sets: a directory with questions.jsonl and its images; every way to get
it wrong is one clear error that names the problem."""

from __future__ import annotations

import json

import pytest

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.vision.data import load_visual
from llama_zoo.suites.vision.synthetic import generate


def write_set(root, items):
    root.mkdir(exist_ok=True)
    lines = []
    for q in items:
        q.image.save(root / f"{q.id}.png")
        lines.append(json.dumps({"id": q.id, "image": f"{q.id}.png", "question": q.question, "answers": list(q.answers),
                                 "metric": q.metric, **({"options": list(q.options)} if q.options else {})}))
    (root / "questions.jsonl").write_text("\n".join(lines) + "\n")


def test_a_written_set_reads_back(tmp_path):
    items = list(generate(12, seed=2))
    write_set(tmp_path / "set", items)
    loaded = load_visual(str(tmp_path / "set"))
    assert [(q.id, q.question, q.answers, q.metric, q.options, q.image.size) for q in loaded.items] == \
           [(q.id, q.question, q.answers, q.metric, q.options, q.image.size) for q in items]
    assert len(load_visual(str(tmp_path / "set"), limit=5).items) == 5
    before = loaded.content_hash
    items[0].image.rotate(90).save(tmp_path / "set" / f"{items[0].id}.png")  # other pixels, another set
    assert load_visual(str(tmp_path / "set")).content_hash != before


def test_synthetic_is_built_in_and_limited():
    assert len(load_visual("synthetic", limit=7).items) == 7
    assert load_visual("synthetic", limit=7).content_hash == load_visual(None, limit=7).content_hash


@pytest.mark.parametrize("edit,message", [
    (lambda root: (root / "questions.jsonl").unlink(), "no questions.jsonl"),
    (lambda root: (root / "synthetic-2-0.png").unlink(), "image 'synthetic-2-0.png' is missing"),
    (lambda root: (root / "questions.jsonl").write_text(
        (root / "questions.jsonl").read_text().replace('"metric": "relaxed"', '"metric": "bleu"', 1)), "unknown metric 'bleu'"),
    (lambda root: (root / "questions.jsonl").write_text("not json\n"), "not a JSON line"),
])
def test_bad_sets_are_one_clear_error(edit, message, tmp_path):
    write_set(tmp_path / "set", list(generate(6, seed=2)))
    edit(tmp_path / "set")
    with pytest.raises(LlamaZooError, match=message):
        load_visual(str(tmp_path / "set"))


def test_hub_rows_become_questions_in_each_benchmarks_layout():
    """The published benchmarks' fields (as lmms-eval reads them) map to questions and metrics; the
    hub itself is not reachable here, so the rows are written out in that layout."""
    from PIL import Image

    from llama_zoo.suites.vision.data import HUB_SETS, _hub_question

    image = Image.new("RGB", (8, 8))
    rows = {
        "vqav2": {"question_id": 7, "question": "how many?", "image": image,
                  "answers": [{"answer": "2", "answer_id": i + 1} for i in range(10)]},
        "docvqa": {"questionId": "d1", "question": "total?", "image": image, "answers": ["$5", "5"]},
        "chartqa": {"question": "max?", "image": image, "answer": "41"},
        "ai2d": {"question": "which?", "image": image, "options": ["a", "b", "c"], "answer": "2"},
        "mmmu": {"id": "validation_Art_1", "question": "In <image 1>, which?", "options": "['x', 'y']", "answer": "B",
                 "image_1": image, "image_2": None, "question_type": "multiple-choice"},
    }
    got = {name: _hub_question(name, HUB_SETS[name], 0, row) for name, row in rows.items()}
    assert got["vqav2"].answers == ("2",) * 10 and got["vqav2"].metric == "vqa" and got["vqav2"].id == "7"
    assert got["docvqa"].answers == ("$5", "5") and got["docvqa"].metric == "anls"
    assert got["chartqa"].answers == ("41",) and got["chartqa"].metric == "relaxed"
    assert got["ai2d"].answers == ("C",) and got["ai2d"].options == ("a", "b", "c")  # index 2 from 0
    assert got["mmmu"].options == ("x", "y") and got["mmmu"].question == "In the image, which?"
    assert all(q.benchmark == name for name, q in got.items())
    open_question = dict(rows["mmmu"], question_type="open")
    two_images = dict(rows["mmmu"], image_2=image)
    assert _hub_question("mmmu", HUB_SETS["mmmu"], 0, open_question) is None
    assert _hub_question("mmmu", HUB_SETS["mmmu"], 0, two_images) is None


def test_an_unreachable_hub_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(LlamaZooError, match="cannot load lmms-lab/ChartQA from the hub"):
        load_visual("chartqa", limit=2)
