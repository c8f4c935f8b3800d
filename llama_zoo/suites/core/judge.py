"""A model that grades another model's replies in words (a judge LLM), for the suites whose
benchmark defines one: any chat model of the registry on transformers (a shadow for a shadow run,
the hub's weights otherwise, or ``--judge-weights``), or whatever an OpenAI-compatible server
serves (``--judge-base-url``: llama.cpp, vLLM, a hosted API). Its answers may also come from
elsewhere (``--judgements-file``). A suite declares its judge prompt; the judge's identity, the
prompt's version and the judgements file's hash go into the run's identity, and every answer is
stored with its sample.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.options import Option
from llama_zoo.suites.core.records import jsonl_file

JUDGE_WEIGHTS = Option("judge_weights", None, "The judge's weights: hub, shadow or a checkpoint directory (default: "
                       "shadow for a shadow run, else hub).", type=str)
JUDGE_OPTIONS = (
    Option("judge", None, "The judge: a registry chat model run on transformers (a shadow for a shadow run), or with "
           "--judge-base-url the name its server serves (default: the one it serves, where it serves one).", type=str),
    JUDGE_WEIGHTS,
    Option("judge_base_url", None, "An OpenAI-compatible server that runs the judge, e.g. http://127.0.0.1:8080/v1 "
           "(key from $LLAMA_ZOO_API_KEY or $OPENAI_API_KEY).", type=str),
    Option("judge_max_new_tokens", 32, "Longest judge answer.", type=int, minimum=1),
    Option("judgements_file", None, "Judge answers made elsewhere: JSON lines of {\"prompt_id\", \"judge_response\"}, "
           "one per case (with --samples-file: the replies it judged).", type=str, path=True),
)


@dataclass
class Judge:
    """``ask(prompts)`` gives the judge's answer to each prompt, greedy; ``identity`` says who answers."""

    identity: dict[str, Any]
    ask: Callable[[Sequence[str]], list[str]] = field(repr=False)


def open_judge(ctx: Any, suite: str) -> Judge:
    """The run's judge from its options (``--judge``, ``--judge-base-url``); a model that cannot
    chat is refused in one line."""
    o = ctx.options
    if o.get("judge_base_url"):
        return _served(ctx, o)
    if not o.get("judge"):
        raise LlamaZooError(f"the {suite} suite needs a judge: --judge MODEL or --judge-base-url URL")
    judge = ctx.open_model(o["judge"], o.get("judge_weights"))
    capabilities = judge.spec.capabilities
    if not capabilities.instruct or capabilities.safety is not None:
        what = "a safety classifier" if capabilities.safety is not None else "not a chat model"
        raise LlamaZooError(f"--judge {judge.spec.id} is {what}: the {suite} judge answers a question in words; "
                            "give an instruct model, e.g. llama-3.1-8b-instruct")
    max_new = o["judge_max_new_tokens"]

    def ask(prompts: Sequence[str]) -> list[str]:
        from llama_zoo.backends.base import GenerateRequest, ask as call
        from llama_zoo.suites.core.base import eos_ids
        from llama_zoo.suites.core.prompting import continuation, user_turn

        # a shadow's byte-level stand-in tokenizer has no chat template: it continues the prompt
        turn = user_turn if getattr(judge.tokenizer, "chat_template", None) else continuation
        requests = [turn(judge.tokenizer, p, max_new_tokens=max_new, temperature=0.0, top_p=1.0,
                         stop_token_ids=eos_ids(judge.spec)) for p in prompts]
        return [g.texts[0] for g in call(judge.runner, GenerateRequest, requests)]

    return Judge({"backend": "hf", **judge.identity, "max_new_tokens": max_new}, ask)


def _served(ctx: Any, o: Any) -> Judge:
    from llama_zoo.backends.base import GenerateRequest, ask as call
    from llama_zoo.backends.openai_api import OpenAIBackend

    options = {"base_url": o["judge_base_url"], "server_model": o.get("judge")}
    # the server names and runs the model: the evaluated model's registry entry only carries the
    # context length the backend wants to know
    source = OpenAIBackend.weights_source(ctx.spec, options)
    backend: list[OpenAIBackend] = []
    max_new = o["judge_max_new_tokens"]

    def ask(prompts: Sequence[str]) -> list[str]:
        if not backend:
            backend.append(OpenAIBackend(ctx.spec, source, options=options))
        requests = [GenerateRequest((), messages=(("user", p),), max_new_tokens=max_new, temperature=0.0, top_p=1.0)
                    for p in prompts]
        return [g.texts[0] for g in call(backend[0], GenerateRequest, requests)]

    return Judge({"backend": "openai", "server": source.ref, "max_new_tokens": max_new}, ask)


def read_judgements(path: str, wanted: set[str], known: set[str]) -> dict[str, str]:
    """``{"prompt_id", "judge_response"}`` per line: an answer for every case of ``wanted``, none for
    an id the dataset lacks (``known``), none twice."""
    found: dict[str, str] = {}
    for n, rec in jsonl_file(path, "--judgements-file"):
        if not isinstance(rec, dict) or "prompt_id" not in rec or not isinstance(rec.get("judge_response"), str):
            raise LlamaZooError(f"{path}:{n}: expected {{\"prompt_id\": ..., \"judge_response\": \"...\"}}")
        key = str(rec["prompt_id"])
        if key not in known:
            raise LlamaZooError(f"{path}:{n}: prompt_id {rec['prompt_id']!r} is not in the dataset")
        if key in found:
            raise LlamaZooError(f"{path}:{n}: prompt_id {rec['prompt_id']!r} appears twice")
        found[key] = rec["judge_response"]
    missing = sorted(wanted - set(found), key=lambda k: (len(k), k))
    if missing:
        raise LlamaZooError(f"{path}: no judge answer for {len(missing)} of {len(wanted)} cases (first: prompt_id {missing[0]})")
    return found


def file_hash(path: str) -> str:
    return hashlib.sha256(Path(path).expanduser().read_bytes()).hexdigest()
