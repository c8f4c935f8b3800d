"""The ``vqa`` suite: a vision model answers questions about images; each question is scored by
its own metric (``vqa`` accuracy, ``anls``, ``relaxed`` accuracy or ``mcq`` accuracy, see
``metrics``), and the run reports each metric's mean and the mean over all questions.

Prompts (``prompts``): lmms-eval's short-answer prompts by default, or Meta's own per benchmark
(``--prompt meta``), in the model's chat template with the image first for instruct models that
have one, after the image placeholder otherwise.
"""

from __future__ import annotations

import json
import random
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.base import (GENERATION_OPTIONS, Context, Emit, Item, Option, PairedBootstrap, Plan, Ratio,
                                  Sample, SuiteInfo, require_sampling)
from llama_zoo.suites.core.prompting import generation_options, sampling
from llama_zoo.suites.core.records import jsonl_file
from llama_zoo.suites.core.stats import rate_metric
from llama_zoo.suites.vision.data import StoredImages, load_visual
from llama_zoo.suites.vision.metrics import anls, mcq_correct, relaxed_correct, vqa_accuracy
from llama_zoo.suites.vision.prompts import BENCHMARK_OF_METRIC, STYLES, Prompt, extract, prompt_for, render
from llama_zoo.suites.vision.synthetic import VisualQuestion
from llama_zoo.backends.base import GenerateRequest, GenerateWithImageRequest

SUITE = "vqa"
SUITE_VERSION = "2"
METRIC_NAMES = {"vqa": "vqa_accuracy", "anls": "anls", "relaxed": "relaxed_accuracy", "mcq": "mcq_accuracy"}
OPTIONS = (
    Option("prompt", "short", "How questions are asked: short (lmms-eval's: answer in a word or phrase, or the "
           "option's letter) or meta (Meta's Llama 3.2 Vision prompts per benchmark, chain of thought for ChartQA "
           "and MMMU, the answer read after FINAL ANSWER).", choices=STYLES),
    *[o if o.name != "max_new_tokens" else
      Option("max_new_tokens", None, "Longest answer (default: the prompt's own, 16 to 2,048 tokens by benchmark).",
             type=int, minimum=1) for o in GENERATION_OPTIONS],
)


def benchmark_of(q: VisualQuestion) -> str:
    return q.benchmark or BENCHMARK_OF_METRIC[q.metric]


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
        headline="accuracy", setup_keys=("prompt", "limit", "predictions_file"), images=StoredImages(),
        paired=PairedBootstrap((Ratio("accuracy", "score"),)),
        options=OPTIONS, scores_predictions_file=True, context_in_identity=False,
        datasets="synthetic (built in; default), easy-vqa, vqav2, docvqa, chartqa, ai2d or mmmu (from the hub), "
                 "or a directory holding questions.jsonl and its images",
    )

    def check(self, spec, options) -> None:
        if spec.capabilities.vision is None:
            raise LlamaZooError(f"{spec.id} is a text-only model: the vqa suite needs a vision model "
                                "(Llama 3.2 Vision, Llama 4)")
        require_sampling(options)
        if options.get("prompt") == "meta":
            prompt_for("meta", spec.id, "vqav2")  # refuses a model Meta published no prompts for

    def plan(self, ctx: Context) -> Plan:
        data = load_visual(ctx.dataset, ctx.limit, ctx.seed)
        options: dict[str, Any] = {}
        if ctx.predictions_file:
            answers = read_answers(ctx.predictions_file, data.items, {q.id for q in data.items})
            options["predictions_file"] = ctx.predictions_file
            items = [Item(i, (), (q, answers[q.id], None)) for i, q in enumerate(data.items)]
        else:
            options.update(generation_options(ctx), prompt=ctx.options["prompt"])
            items = []
            for i, q in enumerate(data.items):
                prompt = prompt_for(ctx.options["prompt"], ctx.spec.id, benchmark_of(q))
                items.append(Item(i, (self._request(ctx, q, prompt, i),), (q, None, prompt)))
        return Plan(data.name, data.revision, data.content_hash, items, options)

    def _request(self, ctx: Context, q: VisualQuestion, prompt: Prompt, index: int) -> GenerateWithImageRequest:
        text = render(prompt, q.question, q.options)
        tokenizer = ctx.tokenizer
        if ctx.spec.capabilities.instruct and getattr(tokenizer, "chat_template", None):
            # Meta's prompts place the image themselves; the chat template then gets text only
            content = [{"type": "text", "text": text}] if "<|image|>" in text else \
                [{"type": "image"}, {"type": "text", "text": text}]
            prompt_text = tokenizer.apply_chat_template([{"role": "user", "content": content}],
                                                        add_generation_prompt=True, tokenize=False)
        else:
            prompt_text = text if "<|image|>" in text else f"<|image|>{text}"
        settings = sampling(ctx, index)
        settings["max_new_tokens"] = ctx.options["max_new_tokens"] or prompt.max_new_tokens
        generation = GenerateRequest((), n=ctx.options["samples"], **settings)
        return GenerateWithImageRequest(q.image, prompt_text, generation)

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        for item, answer in zip(items, answers):
            q, given, prompt = item.data
            text = given if given is not None else answer[0].texts[0]
            # answers made elsewhere are scored as given; a reply to a chain-of-thought prompt, from its end
            answered = text.strip() if prompt is None else extract(prompt, text, q.options)
            extra = {"benchmark": benchmark_of(q), **({"options": list(q.options)} if q.options else {}),
                     **({"answer": answered} if answered != text.strip() else {})}
            emit(Sample(item.index, input=q.question, input_ref=q.id, output=text, target=json.dumps(list(q.answers)),
                                  scores={"score": score(q, answered, ctx.seed), "metric": q.metric}, extra=extra))

    def metrics(self, samples, seed: int, runner=None, state=None) -> list[dict[str, Any]]:
        out = [rate_metric("accuracy", [s["scores"]["score"] for s in samples], seed)]
        for metric, name in METRIC_NAMES.items():
            held = [s["scores"]["score"] for s in samples if s["scores"]["metric"] == metric]
            if held:
                out.append(rate_metric(name, held, seed))
        return out


suite = VisualQASuite()
