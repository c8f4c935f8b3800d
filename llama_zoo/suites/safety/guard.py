"""The ``guard`` suite: a Llama Guard model (any registry model with a safety taxonomy and a Guard
prompt format) as a binary classifier of prompts (``--role user``) or responses (``--role agent``).

The score is the model cards' method: the probability of the verdict token ``unsafe`` as the first
generated token, from one forward pass; unsafe when it is at least 0.5. The renormalised
``p(unsafe) / (p(safe) + p(unsafe))`` is kept beside it, and a short greedy answer is parsed for
the verdict and the violated categories (``unsafe\\nS1,S10``). Verdict tokens are resolved with the
run's tokenizer, never taken as fixed ids: " safe" is one SentencePiece piece in Llama 2's
vocabulary and "safe" one tiktoken token in Llama 3's.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.core.base import (Context, Emit, Item, McNemar, Option, PairedBootstrap, Plan, Statistic, SuiteInfo, eos_ids,
                                  require_language_model)
from llama_zoo.suites.safety.common import classified_sample, classifier_metrics, predicted_items, prompt_hash, require_labels
from llama_zoo.suites.safety.data import check_here, load_labelled
from llama_zoo.suites.safety.guard_prompts import parse_verdict, render
from llama_zoo.backends.base import GenerateRequest, NextTokenRequest

SUITE = "guard"
SUITE_VERSION = "1"
NAMES = ("f1", "precision", "recall", "fpr", "auprc", "auroc", "accuracy")


def policy_categories(spec, options: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    """The categories the prompt lists: the model's taxonomy (or a ``--policy`` file), narrowed by
    ``--categories`` and ``--exclude-categories``. Codes keep their numbers, as the Guard 3/4
    templates keep them when categories are excluded."""
    from llama_zoo.registry.catalog import load_catalog, load_guidelines

    safety = spec.capabilities.safety
    if options.get("policy"):
        categories = read_policy(options["policy"])
    else:
        names = load_catalog().taxonomies[safety.taxonomy]
        guidelines = load_guidelines().get(safety.taxonomy, {})
        categories = [(code, name, guidelines.get(code)) for code, name in names.items()]
    known = [code for code, _, _ in categories]
    chosen, excluded = _codes(options.get("categories")), _codes(options.get("exclude_categories"))
    for flag, codes in (("--categories", chosen), ("--exclude-categories", excluded)):
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise LlamaZooError(f"{flag}: unknown category {unknown[0]!r} for {spec.id} (its categories: {', '.join(known)})")
    kept = [c for c in categories if (not chosen or c[0] in chosen) and c[0] not in excluded]
    if not kept:
        raise LlamaZooError("no category left to check against")
    return kept


def _codes(value: str | None) -> list[str]:
    return [c.strip() for c in (value or "").split(",") if c.strip()]


def read_policy(path: str) -> list[tuple[str, str, str | None]]:
    """A custom policy: a YAML mapping of code -> name, or code -> {name, guidelines}."""
    import yaml

    file = Path(path).expanduser()
    if not file.is_file():
        raise LlamaZooError(f"--policy {path}: no such file")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LlamaZooError(f"--policy {path}: not YAML ({' '.join(str(exc).split())[:120]})") from None
    if not isinstance(data, dict) or not data:
        raise LlamaZooError(f"--policy {path}: expected a mapping of category code to name")
    out = []
    for code, value in data.items():
        if isinstance(value, str):
            out.append((str(code), value.strip().rstrip("."), None))
        elif isinstance(value, dict) and isinstance(value.get("name"), str):
            out.append((str(code), value["name"].strip().rstrip("."), value.get("guidelines")))
        else:
            raise LlamaZooError(f"--policy {path}: category {code!r} needs a name")
    return out


def verdict_token_ids(tokenizer) -> dict[str, Any]:
    """The first token of each verdict word as the model writes it after the prompt; whether each
    word is a single token is recorded (it is in every Llama vocabulary)."""
    ids = {word: tokenizer(word, add_special_tokens=False).input_ids for word in ("safe", "unsafe")}
    if ids["safe"][0] == ids["unsafe"][0]:
        raise LlamaZooError("the tokenizer starts 'safe' and 'unsafe' with the same token: the verdict cannot be scored")
    return {"safe": ids["safe"][0], "unsafe": ids["unsafe"][0], "single_tokens": all(len(v) == 1 for v in ids.values())}


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of a rendered prompt, with one BOS: Llama 3 and 4 prompts carry it as text; Guard 1
    and 2 were trained with the BOS their tokenizers add, which their templates do not write (and
    not every copy of a tokenizer adds it on its own)."""
    ids = tokenizer(text, add_special_tokens=False).input_ids
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos, *ids]
    return ids


def verdict_request(spec, tokenizer, categories, turns: Sequence[tuple[str, str]],
                    verdict: dict[str, Any] | None = None) -> tuple[NextTokenRequest, str]:
    """The next-token request that scores a Guard's verdict on ``turns``, and the rendered prompt."""
    text = render(spec.capabilities.safety.prompt_format, categories, turns)
    verdict = verdict or verdict_token_ids(tokenizer)
    return NextTokenRequest(encode(tokenizer, text), (verdict["safe"], verdict["unsafe"])), text


def turns_of(row, role: str) -> list[tuple[str, str]]:
    return [("user", row.text)] + ([("agent", row.response)] if role == "agent" else [])


def template_agrees(tokenizer, prompt: str, turns: Sequence[tuple[str, str]]) -> bool | None:
    """Whether the checkpoint's own Guard chat template, where it ships one, renders ``turns`` as the
    builder does (up to the two differences the builder makes on purpose: see guard_prompts); None
    when there is no Guard template or it cannot render this conversation."""
    template = getattr(tokenizer, "chat_template", None)
    if not isinstance(template, str) or "UNSAFE CONTENT CATEGORIES" not in template:
        return None
    for parts in (False, True):  # Guard 3 1B / 11B-Vision and Guard 4 read content as a list of parts
        messages = [{"role": "user" if role == "user" else "assistant",
                     "content": [{"type": "text", "text": text}] if parts else text} for role, text in turns]
        try:
            text = tokenizer.apply_chat_template(messages, tokenize=False)
        except Exception:  # noqa: BLE001 - a template that rejects this form of content
            continue
        bos = getattr(tokenizer, "bos_token", None) or ""
        text = text.lstrip(" ")
        if text.endswith(("<|end_header_id|>", "<|header_end|>")):
            text += "\n\n"
        if text in (prompt, bos + prompt):
            return True
    return False


class GuardSuite:
    info = SuiteInfo(
        check_data=partial(check_here, default="xstest"),
        name=SUITE, version=SUITE_VERSION,
        summary="Llama Guard 1-4 as safety classifiers of prompts or responses: F1, precision, recall, FPR at 0.5, AUPRC, AUROC.",
        headline="f1", setup_keys=("role", "categories", "limit"),
        paired=(McNemar("correct", "accuracy at 0.5"), PairedBootstrap(statistics=(Statistic("auprc"),))),
        datasets="xstest (default), openai-moderation, or a .csv/.jsonl file with prompt, optional response, label",
        scores_predictions_file=True,
        options=(
            Option("role", "user", "Classify the user's prompt (user) or the agent's response to it (agent; the data needs a response column).",
                   choices=("user", "agent")),
            Option("categories", None, "Only these categories of the model's taxonomy, e.g. S1,S9 (codes keep their numbers).", type=str),
            Option("exclude_categories", None, "Leave these categories out, e.g. S6,S7.", type=str),
            Option("policy", None, "A custom policy: YAML mapping category code -> name (or -> {name, guidelines}).", type=str),
            Option("verdict_tokens", 16, "New tokens of the greedy answer parsed for the verdict and categories (0: score only).",
                   type=int, minimum=0),
        ),
    )

    def check(self, spec, options) -> None:
        safety = spec.capabilities.safety
        if safety is None or safety.role != "content-moderation" or safety.prompt_format is None:
            hint = "; Prompt Guard models run in the prompt-guard suite" if safety and safety.role == "prompt-attack" else ""
            raise LlamaZooError(f"{spec.id} has no safety taxonomy: the guard suite needs a Llama Guard model{hint}")
        require_language_model(spec, SUITE)
        policy_categories(spec, options)

    def plan(self, ctx: Context) -> Plan:
        data = load_labelled(ctx.dataset, ctx.dataset_revision, "xstest")
        require_labels(data.rows, data.name)
        rows = ctx.first(data.rows)
        options: dict[str, Any] = {}
        if ctx.predictions_file:
            options["predictions_file"] = ctx.predictions_file
            return Plan(data.name, data.revision, data.content_hash,
                        predicted_items(ctx.predictions_file, rows, data.rows), options)
        role = ctx.options["role"]
        if role == "agent" and any(r.response is None for r in rows):
            raise LlamaZooError(f"{data.name}: --role agent classifies responses, and rows have none (a 'response' column)")
        categories = policy_categories(ctx.spec, ctx.options)
        fmt = ctx.spec.capabilities.safety.prompt_format
        verdict = verdict_token_ids(ctx.tokenizer)
        items = []
        for i, row in enumerate(rows):
            scored, text = verdict_request(ctx.spec, ctx.tokenizer, categories, turns_of(row, role), verdict)
            ids = scored.prompt
            if len(ids) + ctx.options["verdict_tokens"] > ctx.context:
                raise LlamaZooError(f"row {row.id}: the prompt has {len(ids)} tokens, over the {ctx.context}-token context "
                                    "(give --context, or a real tokenizer with --tokenizer)")
            requests: tuple[Any, ...] = (scored,)
            if ctx.options["verdict_tokens"]:
                requests += (GenerateRequest(ids, max_new_tokens=ctx.options["verdict_tokens"], stop_token_ids=eos_ids(ctx.spec)),)
            items.append(Item(i, requests, (row, None, prompt_hash(text))))
        customised = any(ctx.options.get(k) for k in ("categories", "exclude_categories", "policy"))
        agrees = None if customised else template_agrees(ctx.tokenizer, render(fmt, categories, turns_of(rows[0], role)),
                                                          turns_of(rows[0], role))
        if agrees is False:
            warnings.warn(f"{ctx.spec.id}: the checkpoint's chat template renders another prompt than the {fmt} format; "
                          "scoring with the registry's format", stacklevel=2)
        options.update(role=role, prompt_format=fmt, chat_template_agrees=agrees, categories=",".join(c[0] for c in categories),
                       verdict_token_ids=verdict, verdict_tokens=ctx.options["verdict_tokens"])
        if ctx.options.get("policy"):
            options["policy_sha256"] = hashlib.sha256(Path(ctx.options["policy"]).expanduser().read_bytes()).hexdigest()
        return Plan(data.name, data.revision, data.content_hash, items, options)

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        for item, answer in zip(items, answers):
            row, prediction, rendered = item.data
            if prediction is not None:
                verdict = parse_verdict(prediction.verdict)[0] if prediction.verdict is not None else None
                given = {} if prediction.verdict is None else {"verdict_unsafe": None if verdict is None else int(verdict == "unsafe")}
                emit(classified_sample(
                    item.index, row, prediction.unsafe_score, more_scores=given,
                    extra={"predicted_categories": list(prediction.categories) if prediction.categories else None}))
                continue
            p_safe, p_unsafe = (math.exp(x) for x in answer[0])
            text = answer[1].texts[0] if len(answer) > 1 else None
            verdict, codes = parse_verdict(text) if text is not None else (None, ())
            more = {"renormalized": p_unsafe / (p_safe + p_unsafe) if p_safe + p_unsafe > 0 else 0.5, "p_safe": p_safe}
            if text is not None:  # a greedy answer was made; its verdict is None where it starts with neither word
                more["verdict_unsafe"] = None if verdict is None else int(verdict == "unsafe")
            emit(classified_sample(
                item.index, row, p_unsafe, output=text, more_scores=more,
                extra={"prompt_sha256": rendered, "verdict": verdict, "predicted_categories": list(codes) or None}))

    def metrics(self, samples, seed: int, runner=None, state=None) -> list[dict[str, Any]]:
        out = classifier_metrics(samples, NAMES, seed, more={"renormalized": ("auprc", "auroc", "f1"),
                                                             "verdict_unsafe": ("precision", "recall", "f1", "fpr")})
        answered = [s for s in samples if "verdict_unsafe" in s["scores"]]
        if answered:
            parsed = sum(s["scores"]["verdict_unsafe"] is not None for s in answered)
            out.append({"name": "verdict_parsed", "value": parsed / len(answered), "ci_low": None, "ci_high": None,
                        "n": len(answered), "extra": None})
        return out


suite = GuardSuite()
