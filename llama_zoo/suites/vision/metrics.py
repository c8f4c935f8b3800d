"""The four answer metrics of visual question answering, as the field defines them.

- ``vqa_accuracy`` (VQAv2): answers normalised as the official VQA evaluation does (punctuation,
  number words, articles, contractions); of the ten human answers each is left out in turn and the
  prediction scores min(1, matches among the other nine / 3); the ten scores are averaged. Both
  sides are always normalised, as lmms-eval does since August 2025 (the official script skips it
  when the ten answers are identical, so "Yes" against ten "yes" scores 0 there).
- ``anls`` (DocVQA): 1 - edit distance / length of the longer raw string, after lower-casing,
  stripping and collapsing spaces; the best over the ground truths; 0 below 0.5 (0.5 itself kept,
  as the RRC script and lmms-eval keep it).
- ``relaxed_correct`` (ChartQA): numbers within 5% of the target (inclusive; a trailing % read as
  a percentage, so "75%" is 0.75; a zero target compared as text), anything else by
  case-insensitive exact match; the best over several targets.
- ``choice_of`` / ``mcq_correct`` (MMMU): the option a reply picks: "(A)", then " A ", then "A.",
  then an option's text (replies of more than five words), the last occurring when several; a
  seeded random option when none.

The constants below are the published normalisation data (the official evaluation's lists).
"""

from __future__ import annotations

import random
import re
from typing import Sequence

PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
                "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = ("a", "an", "the")
CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't", "dont": "don't",
    "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd", "howll": "how'll",
    "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd",
    "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've",
    "she'dve": "she'd've", "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", "somebodyll": "somebody'll",
    "somebodys": "somebody's", "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're", "theres": "there's", "theyd": "they'd",
    "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've", "werent": "weren't",
    "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've", "whens": "when's",
    "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've", "whyll": "why'll",
    "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll",
    "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're",
    "youve": "you've",
}
DIGIT_COMMA_DIGIT = re.compile(r"(\d)(,)(\d)")
PERIOD = re.compile(r"\.(?!\d)")  # a period not followed by a digit (3.5 keeps its point)
CHOICE_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


# --------------------------------------------------------------------------- VQAv2


def normalise_answer(text: str) -> str:
    """The official VQA answer normalisation: punctuation, then lower case, number words, articles
    and contractions."""
    text = text.replace("\n", " ").replace("\t", " ").strip()
    # a mark is deleted when it touches a space or the answer has a digit-comma-digit; otherwise it
    # becomes a space ("red,white" -> "red white", "1,000" -> "1000")
    delete_all = DIGIT_COMMA_DIGIT.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        touches_space = f"{mark} " in text or f" {mark}" in text
        out = out.replace(mark, "" if touches_space or delete_all else " ")
    out = PERIOD.sub("", out)
    words = [NUMBER_WORDS.get(w, w) for w in out.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def vqa_accuracy(prediction: str, answers: Sequence[str]) -> float:
    """Mean over the human answers left out in turn of min(1, matches among the others / 3)."""
    predicted = normalise_answer(prediction)
    truths = [normalise_answer(a) for a in answers]
    if len(truths) == 1:
        return float(predicted == truths[0])
    scores = []
    for left_out in range(len(truths)):
        matches = sum(t == predicted for i, t in enumerate(truths) if i != left_out)
        scores.append(min(1.0, matches / 3))
    return sum(scores) / len(scores)


# --------------------------------------------------------------------------- ANLS


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def anls(prediction: str, answers: Sequence[str], tau: float = 0.5) -> float:
    """Average normalised Levenshtein similarity of one question: the best over the ground truths,
    0 below ``tau``. The distance is between normalised strings, its denominator the longer raw one."""
    predicted = " ".join(prediction.strip().lower().split())
    best = 0.0
    for answer in answers:
        truth = " ".join(answer.strip().lower().split())
        length = max(len(answer), len(prediction))
        similarity = 1.0 if length == 0 else 1.0 - edit_distance(truth, predicted) / length
        best = max(best, similarity)
    return 0.0 if best < tau else best


# --------------------------------------------------------------------------- ChartQA


def _number(text: str) -> float | None:
    try:
        return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        return None


def relaxed_correct(prediction: str, targets: Sequence[str], tolerance: float = 0.05) -> float:
    """1.0 when the prediction is within ``tolerance`` of a numeric target (relative, inclusive), or
    equals a non-numeric (or zero) target ignoring case; the best over the targets."""
    predicted = prediction.strip()
    value = _number(predicted)
    for target in targets:
        goal = _number(target.strip())
        if value is not None and goal:
            if abs(value - goal) / abs(goal) <= tolerance:
                return 1.0
        elif predicted.lower() == target.strip().lower():
            return 1.0
    return 0.0


# --------------------------------------------------------------------------- multiple choice


def choice_of(reply: str, options: Sequence[str], rng: random.Random) -> str:
    """The letter of the option ``reply`` picks (MMMU's parsing, with its "A." rule as lmms-eval has
    it); a random letter from ``rng`` when it names none."""
    letters = CHOICE_LETTERS[: len(options)]
    text = reply
    for mark in (",", ".", "!", "?", ";", ":", "'"):
        text = text.strip(mark)
    padded = f" {text} "
    found = [c for c in letters if f"({c})" in padded]
    key = (lambda c: f"({c})") if found else (lambda c: f" {c} ")
    if not found:
        found = [c for c in letters if f" {c} " in padded]
    if not found:
        found = [c for c in letters if f" {c}." in f" {text}"]
        key = lambda c: f" {c}."  # noqa: E731
        padded = f" {text}"
    if not found and len(padded.split()) > 5:
        lowered = padded.lower()
        found = [c for c, option in zip(letters, options) if option.lower() in lowered]
        key = lambda c: options[letters.index(c)].lower()  # noqa: E731
        padded = lowered
    if not found:
        return rng.choice(letters)
    return max(found, key=lambda c: padded.rfind(key(c)))  # the last occurring; ties go to the earlier letter


def mcq_correct(reply: str, options: Sequence[str], answer: str, rng: random.Random) -> float:
    """``answer`` is a letter, or an option's text."""
    letters = CHOICE_LETTERS[: len(options)]
    gold = answer if answer in letters else letters[list(options).index(answer)] if answer in options else answer
    return float(choice_of(reply, options, rng) == gold)
