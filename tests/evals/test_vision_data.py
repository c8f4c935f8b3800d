"""Local visual question sets: a directory with questions.jsonl and its images; every way to get
it wrong is one clear error that names the problem."""

from __future__ import annotations

import json

import pytest

from llama_zoo.errors import LlamaZooError
from llama_zoo.evals.vision.data import load_visual
from llama_zoo.evals.vision.synthetic import generate


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
