"""How vision questions are asked and answers read back: lmms-eval's short prompts, Meta's Llama 3.2
Vision prompts per benchmark and model size, and the answer after "FINAL ANSWER"."""

from __future__ import annotations

import json

import pytest

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.vision.prompts import META, SHORT, extract, prompt_for, render
from tests.zoo import zoo


def test_every_meta_prompt_places_the_image_once_and_asks_the_question():
    for model, prompts in META.items():
        assert set(prompts) == set(SHORT), model  # every benchmark the short style covers
        for benchmark, prompt in prompts.items():
            text = render(prompt, "QUESTION?", ("x", "y"))
            assert text.startswith("<|image|>") and text.count("<|image|>") == 1, (model, benchmark)
            assert "QUESTION?" in text


def test_the_two_sizes_differ_where_meta_says_they_do():
    small, large = (prompt_for("meta", f"llama-3.2-{size}-vision-instruct", "chartqa") for size in ("11b", "90b"))
    assert small != large and "Step 6" in large.template and small.final_answer and large.final_answer
    assert prompt_for("meta", "llama-3.2-11b-vision", "vqav2") == prompt_for("meta", "llama-3.2-90b-vision", "vqav2")
    with pytest.raises(LlamaZooError, match="use --prompt short"):
        prompt_for("meta", "llama-4-scout-17b-16e-instruct", "chartqa")


def test_options_are_written_as_each_prompt_asks():
    short = render(SHORT["mmmu"], "Which?", ("red", "blue"))
    assert "A. red\nB. blue" in short and short.endswith("directly.")
    meta = render(prompt_for("meta", "llama-3.2-11b-vision", "mmmu"), "Which?", ("red", "blue"))
    assert "Options: ['red', 'blue'] Indicate" in meta
    ai2d = render(prompt_for("meta", "llama-3.2-90b-vision", "ai2d"), "Which?", ("red", "blue"))
    assert "Which?\n1. red\n2. blue\n Respond only with the correct option digit." in ai2d


@pytest.mark.parametrize("reply,expected", [
    ("The bars show 12 and 30. FINAL ANSWER: 42", "42"),
    ("final answer: **17**", "17"),
    ("First FINAL ANSWER: 3, but on reflection FINAL ANSWER: 4", "4"),  # the last one counts
    ("It is 42.", "It is 42."),  # never written: the whole reply
])
def test_the_answer_after_final_answer(reply, expected):
    assert extract(prompt_for("meta", "llama-3.2-11b-vision", "chartqa"), reply) == expected


def test_an_option_number_becomes_its_letter():
    options = ("cell", "leaf", "root", "stem")
    assert extract(prompt_for("meta", "llama-3.2-90b-vision", "ai2d"), "3", options) == "C"
    assert extract(prompt_for("meta", "llama-3.2-11b-vision", "ai2d"), "Looking at 2 arrows... FINAL ANSWER: 4",
                   options) == "D"
    assert extract(prompt_for("meta", "llama-3.2-90b-vision", "ai2d"), "none of them", options) == "none of them"
    assert extract(SHORT["chartqa"], "  7  ") == "7"  # short prompts: the reply itself


@pytest.mark.slow
def test_meta_prompts_run_and_are_part_of_the_run(tmp_path):
    args = ("eval", "--model", "llama-3.2-11b-vision-instruct", "--suite", "vqa", "--shadow", "--limit", "4",
            "--max-new-tokens", "3", "--format", "json")
    meta = json.loads(zoo(*args, "--prompt", "meta", db=tmp_path / "r.db").stdout)
    short = json.loads(zoo(*args, db=tmp_path / "r.db").stdout)
    assert meta["run_id"] != short["run_id"] and not short["cached"]  # a different prompt: a different run
    report = zoo("report", "--format", "md", db=tmp_path / "r.db").stdout
    assert "prompt=meta" in report and "prompt=short" in report
