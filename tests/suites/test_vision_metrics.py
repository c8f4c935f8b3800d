"""Golden cases for the four VQA metrics, from their published definitions and from the reference
implementations' outputs (the official VQA evaluation / lmms-eval's processor, the RRC ANLS script,
pix2struct's relaxed correctness, MMMU's parser)."""

from __future__ import annotations

import random

import pytest

from llama_zoo.suites.vision.metrics import anls, choice_of, mcq_correct, normalise_answer, relaxed_correct, vqa_accuracy


@pytest.mark.parametrize("raw,normalised", [
    ("Yes.", "yes"), ("Two dogs", "2 dogs"), ("3.5", "3.5"), ("1,000", "1000"), ("red, white", "red white"),
    ("red,white", "red white"), ("left-hand side", "left hand side"), ("a-b", "b"), ("The cat's toy.", "cat's toy"),
    ("dont", "don't"), ("Im", "im"), ("(A)", ""),
])
def test_vqa_normalisation(raw, normalised):
    assert normalise_answer(raw) == normalised


@pytest.mark.parametrize("matching,score", [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_vqa_accuracy_leave_one_out(matching, score):
    """k of ten annotators said it: [k min(1,(k-1)/3) + (10-k) min(1,k/3)] / 10."""
    answers = ["two"] * matching + ["three"] * (10 - matching)
    assert vqa_accuracy("2", answers) == pytest.approx(score)  # "two" normalises to "2"
    assert vqa_accuracy("Two.", answers) == pytest.approx(score)


def test_anls():
    assert anls("ABC Corp", ["abc  corp"]) == 1.0  # case and spaces do not count
    truth = "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv"
    assert len(truth) == 100
    assert anls(truth[:49] + "#" * 51, [truth]) == 0.0  # similarity 0.49: below the 0.5 threshold
    assert anls(truth[:51] + "#" * 49, [truth]) == pytest.approx(0.51)
    assert anls("abxy", ["abcd"]) == 0.5  # exactly 0.5 is kept, as the RRC script keeps it
    assert anls("INV-1234", ["nothing like it", "INV-1234"]) == 1.0  # the best ground truth


@pytest.mark.parametrize("prediction,target,correct", [
    ("75%", "0.76", True), ("0.76", "75%", True), ("12%", "12", False), ("12%", "12%", True),
    ("104", "100", True), ("105", "100", True), ("106", "100", False), ("Yes", "yes", True), ("yes.", "yes", False),
    ("0.0", "0", False), ("0", "0", True),
])
def test_relaxed_accuracy(prediction, target, correct):
    assert relaxed_correct(prediction, [target]) == float(correct)


@pytest.mark.parametrize("reply,expected", [
    ("A", "A"), ("(B)", "B"), ("B.", "B"), ("The answer is C.", "C"), ("A. red apple", "A"),
    ("I think (A) is wrong, the answer is (C)", "C"), ("Between A and B, I pick B", "B"),
    ("The correct choice is the blue sky among these options", "B"), ("Answer: D", "D"),
])
def test_multiple_choice_parsing(reply, expected):
    options = ["red apple", "blue sky", "green grass", "yellow sun"]
    assert choice_of(reply, options, random.Random(0)) == expected


def test_a_reply_naming_no_option_gets_a_seeded_random_one():
    options = ["red apple", "blue sky", "green grass", "yellow sun"]
    picks = [choice_of("**hmm**", options, random.Random(7)) for _ in range(3)]
    assert len(set(picks)) == 1 and picks[0] in "ABCD"  # the same seed, the same pick
    assert mcq_correct("(C)", options, "green grass", random.Random(0)) == 1.0  # a gold answer given as option text
    assert mcq_correct("(C)", options, "B", random.Random(0)) == 0.0
