"""How a generating suite asks a model one thing: instruct models in their chat template, base
models by continuing the text."""

from __future__ import annotations

from typing import Any

from llama_zoo.suites.core.base import Context, eos_ids
from llama_zoo.backends.base import GenerateRequest


def generation_options(ctx: Context) -> dict[str, Any]:
    """What a generating run stores of its generation options (part of its identity)."""
    o = ctx.options
    return dict(samples=o["samples"], temperature=o["temperature"], top_p=o["top_p"], max_new_tokens=o["max_new_tokens"],
                instruct=ctx.spec.capabilities.instruct)


def sampling(ctx: Context, index: int) -> dict[str, Any]:
    """A ``GenerateRequest``'s length, sampling and stop settings from the suite's options; sample
    ``index`` draws from its own seed."""
    spec, o = ctx.spec, ctx.options
    return dict(max_new_tokens=o["max_new_tokens"], temperature=o["temperature"], top_p=o["top_p"],
                seed=ctx.seed + index, stop_token_ids=eos_ids(spec),
                stop_strings=tuple(spec.tokenizer.stop_strings) if spec.tokenizer else ())


def chats(ctx: Context) -> bool:
    """Whether an instruct model is asked in its chat: it has a chat template here, or a text
    backend's chat endpoint applies the server's."""
    tokenizer = ctx.tokenizer
    return bool(ctx.spec.capabilities.instruct) and (tokenizer is None or bool(getattr(tokenizer, "chat_template", None)))


def user_turn(tokenizer, text: str, system: str | None = None, **settings: Any) -> GenerateRequest:
    """``text`` as one user turn, after a system turn where one is given: chat messages for a text
    backend (no tokenizer here), else the chat template rendered and encoded."""
    turns = ((("system", system),) if system is not None else ()) + (("user", text),)
    if tokenizer is None:
        return GenerateRequest((), messages=turns, **settings)
    # transformers 5 returns a mapping when it tokenizes: render the text, then encode it
    rendered = tokenizer.apply_chat_template([{"role": r, "content": c} for r, c in turns], add_generation_prompt=True,
                                             tokenize=False)
    return GenerateRequest(tuple(tokenizer(rendered, add_special_tokens=False).input_ids), text=rendered, **settings)


def continuation(tokenizer, text: str, system: str | None = None, **settings: Any) -> GenerateRequest:
    """``text`` as a prompt to continue (a system prompt, where given, as a paragraph before it)."""
    text = f"{system}\n\n{text}" if system is not None else text
    ids = tuple(tokenizer(text).input_ids) if tokenizer is not None else ()
    return GenerateRequest(ids, text=text, **settings)


def ask(ctx: Context, text: str, index: int, system: str | None = None) -> GenerateRequest:
    """``text`` as one user turn (an instruct model with a chat template, or a text backend's chat
    endpoint), after ``system`` as a system turn, or as a prompt to continue."""
    turn = user_turn if chats(ctx) else continuation
    return turn(ctx.tokenizer, text, system, **sampling(ctx, index))
