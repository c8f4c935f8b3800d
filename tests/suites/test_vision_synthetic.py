"""The synthetic visual questions: the same items on every run, answers that follow from the
generator's parameters, and a few hundred of them distinct."""

from __future__ import annotations

import re

import pytest

from llama_zoo.suites.vision.synthetic import KINDS, LETTERS, generate


@pytest.mark.slow
def test_items_are_deterministic_and_every_kind_appears():
    first, again = list(generate(24, seed=3)), list(generate(24, seed=3))
    assert [(q.id, q.question, q.answers, q.options, q.image.size) for q in first] == \
           [(q.id, q.question, q.answers, q.options, q.image.size) for q in again]
    assert list(generate(6, seed=4))[0].about != first[0].about  # another seed, other items
    assert {q.metric for q in first} == {"vqa", "anls", "relaxed", "mcq"} and len(first) == 4 * len(KINDS)


@pytest.mark.slow
def test_answers_follow_from_the_parameters():
    for q in generate(60, seed=1):
        if q.metric == "relaxed" and "sold" in q.question:
            label = re.match(r"How many (\w+) were sold", q.question).group(1)
            assert q.answers == (str(q.about["values"][q.about["labels"].index(label)]),)
        elif q.metric == "relaxed":
            year = int(re.search(r"in (\d{4})", q.question).group(1))
            assert q.answers == (f"{q.about['values'][q.about['years'].index(year)]}%",)
        elif q.metric == "anls":
            assert q.answers[0] in q.about.values()
        elif q.metric == "vqa":
            assert len(q.answers) == 10 and len(set(q.answers)) == 1  # one answer, as ten annotators
            counted = re.match(r"How many (\w+)s are there", q.question)
            if counted:
                assert q.answers[0] == str(q.about["counts"][counted.group(1)])
            else:
                shape = re.match(r"What colour is the (\w+)", q.question).group(1)
                assert q.about["counts"][shape] == 1 and q.answers[0] == q.about["colours"][shape]
        else:
            chosen = q.options[LETTERS.index(q.answers[0])]
            if "highest" in q.question:
                assert chosen == q.about["labels"][q.about["values"].index(max(q.about["values"]))]
            else:
                shape = re.match(r"How many (\w+)s are there", q.question).group(1)
                assert chosen == str(q.about["counts"][shape])
            assert len(set(q.options)) == len(q.options)


@pytest.mark.slow
def test_a_few_hundred_items_are_distinct_and_cover_every_kind():
    """How long they take (about 6 s on the 2-core machine) is benchmarks/build_speeds.py's to measure."""
    items = list(generate(300, seed=0))
    assert len(items) == 300 and len({q.id for q in items}) == 300
    assert {q.metric for q in items} == {"vqa", "anls", "relaxed", "mcq"}
