"""The ``vqa`` suite: a vision model answers questions about images; each question is scored by
its own metric (``vqa`` accuracy, ``anls``, ``relaxed`` accuracy or ``mcq`` accuracy, see
``metrics``), and the run reports each metric's mean and the mean over all questions.

Prompts follow lmms-eval's: the question, then "Answer the question using a single word or
phrase." (multiple choice: the options lettered A, B, ... and "Answer with the option's letter
from the given choices directly."), in the model's chat template with the image first for
instruct models, after the image placeholder for base models.
"""

from __future__ import annotations

import json
import random
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.evals.base import (GENERATION_OPTIONS, Context, Emit, Item, PairedBootstrap, Plan, Ratio, SuiteInfo,
                                  require_sampling)
from llama_zoo.evals.prompting import generation_options, sampling
from llama_zoo.evals.records import jsonl_file
from llama_zoo.evals.stats import rate_metric
from llama_zoo.evals.vision.data import load_visual
from llama_zoo.evals.vision.metrics import CHOICE_LETTERS, anls, mcq_correct, relaxed_correct, vqa_accuracy
from llama_zoo.evals.vision.synthetic import VisualQuestion
from llama_zoo.runners.base import GenerateRequest, GenerateWithImageRequest

SUITE = "vqa"
SUITE_VERSION = "1"
SHORT_ANSWER = "Answer the question using a single word or phrase."
LETTER_ANSWER = "Answer with the option's letter from the given choices directly."
METRIC_NAMES = {"vqa": "vqa_accuracy", "anls": "anls", "relaxed": "relaxed_accuracy", "mcq": "mcq_accuracy"}


def question_text(q: VisualQuestion) -> str:
    if q.metric == "mcq":
        options = "\n".join(f"{letter}. {option}" for letter, option in zip(CHOICE_LETTERS, q.options))
        return f"{q.question}\n{options}\n{LETTER_ANSWER}"
    return f"{q.question}\n{SHORT_ANSWER}"


def score(q: VisualQuestion, answer: str, seed: int) -> float:
    if q.metric == "vqa":
        return vqa_accuracy(answer, q.answers)
    if q.metric == "anls":
        return anls(answer, q.answers)
    if q.metric == "relaxed":
        return relaxed_correct(answer, q.answers)
    # an unparsable reply gets a random option, the same one for the same question and seed
    return mcq_correct(answer, q.options, q.answers[0], random.Random(f"{seed}:{q.id}"))


def read_answers(path: str, items: Sequence[VisualQuestion], every_id: set[str]) -> dict[str, str]:
    """``{"id", "answer"}`` lines: one answer per question asked, no id outside the set."""
    found: dict[str, str] = {}
    for n, rec in jsonl_file(path, "--predictions-file"):
        if not isinstance(rec, dict) or "id" not in rec or not isinstance(rec.get("answer"), str):
            raise LlamaZooError(f"{path}:{n}: expected {{\"id\": ..., \"answer\": \"...\"}}")
        if str(rec["id"]) not in every_id:
            raise LlamaZooError(f"{path}:{n}: id {rec['id']!r} is not in the dataset")
        found[str(rec["id"])] = rec["answer"]
    missing = [q.id for q in items if q.id not in found]
    if missing:
        raise LlamaZooError(f"{path}: no answer for {len(missing)} of {len(items)} questions (first: id {missing[0]!r})")
    return found


class VisualQASuite:
    info = SuiteInfo(
        name=SUITE, version=SUITE_VERSION,
        summary="Visual question answering: VQA accuracy, ANLS, relaxed accuracy and multiple choice, each question by its own metric.",
        headline="accuracy", setup_keys=("limit",),
        paired=PairedBootstrap((Ratio("accuracy", "score"),)),
        options=GENERATION_OPTIONS, scores_predictions_file=True,
        # shadow vision models need processors built from the registry's vision config: not yet (#13)
        weights=("hub", "local"),
        datasets="synthetic (built in; default) or a directory holding questions.jsonl and its images",
    )

    def check(self, spec, options) -> None:
        if spec.capabilities.vision is None:
            raise LlamaZooError(f"{spec.id} is a text-only model: the vqa suite needs a vision model "
                                "(Llama 3.2 Vision, Llama 4)")
        require_sampling(options)

    def plan(self, ctx: Context) -> Plan:
        data = load_visual(ctx.dataset, ctx.limit, ctx.seed)
        options: dict[str, Any] = {"limit": ctx.limit}
        if ctx.predictions_file:
            answers = read_answers(ctx.predictions_file, data.items, {q.id for q in data.items})
            options["predictions_file"] = ctx.predictions_file
            items = [Item(i, (), (q, answers[q.id])) for i, q in enumerate(data.items)]
        else:
            options.update(generation_options(ctx))
            items = [Item(i, (self._request(ctx, q, i),), (q, None)) for i, q in enumerate(data.items)]
        return Plan(data.name, data.revision, data.content_hash, items, options)

    def _request(self, ctx: Context, q: VisualQuestion, index: int) -> GenerateWithImageRequest:
        text = question_text(q)
        tokenizer = ctx.tokenizer
        if ctx.spec.capabilities.instruct and getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
                add_generation_prompt=True, tokenize=False)
        else:
            prompt = f"<|image|>{text}"
        generation = GenerateRequest((), n=ctx.options["samples"], **sampling(ctx, index))
        return GenerateWithImageRequest(q.image, prompt, generation)

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        for item, answer in zip(items, answers):
            q, given = item.data
            text = given if given is not None else answer[0].texts[0]
            emit(item.index, dict(input=q.question, input_ref=q.id, output=text, target=json.dumps(list(q.answers)),
                                  scores={"score": score(q, text.strip(), ctx.seed), "metric": q.metric},
                                  extra={"options": list(q.options)} if q.options else None))

    def metrics(self, samples, seed: int, runner=None) -> list[dict[str, Any]]:
        out = [rate_metric("accuracy", [s["scores"]["score"] for s in samples], seed)]
        for metric, name in METRIC_NAMES.items():
            held = [s["scores"]["score"] for s in samples if s["scores"]["metric"] == metric]
            if held:
                out.append(rate_metric(name, held, seed))
        return out


suite = VisualQASuite()
