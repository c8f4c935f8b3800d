"""The ``bench`` suite: how fast a model shape scores and generates on this machine, measured
through the same runner calls that evaluation makes.

Scoring: ``iters`` batches of random-token windows, each answered by one timed runner call after
one warm-up call; model-FLOP utilisation against the dense matmul peak the runner measures on its
device in its dtype. Generation: one batch of random prompts, exactly ``new_tokens`` new tokens
each (no early stop), prefill included, after an untimed warm-up of the same shape. Each item is
its own runner call (``items_per_chunk=1``), so its time is its own.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

from llama_zoo.suites.core.base import (Chart, Context, Emit, Item, Option, Plan, Sample, SuiteInfo, Work,
                                  require_language_model)
from llama_zoo.backends.base import GenerateRequest, TokenWindow

SUITE = "bench"
SUITE_VERSION = "1"


class SpeedSuite:
    info = SuiteInfo(
        name=SUITE, version=SUITE_VERSION,
        summary="Speed: scored tokens/s with model-FLOP utilisation, new tokens/s, peak memory (shadow or random weights).",
        headline="score_tokens_per_s", setup_keys=("context", "batch", "gen_batch", "new_tokens"),
        charts=(Chart("metric_vs_params", "score_tokens_per_s", log_y=True),),
        options=(
            # named as the run's --batch-size and eval's --max-new-tokens, so the flags agree between commands;
            # the plan stores them under their first names (batch, new_tokens), as runs always have
            Option("batch_size", 8, "Windows per scoring call.", type=int, minimum=1, aliases=("batch",)),
            Option("gen_batch", 32, "Sequences generated at once.", type=int, minimum=1),
            Option("prompt_tokens", 128, "Prompt length for generation.", type=int, minimum=1),
            Option("max_new_tokens", 256, "New tokens per generated sequence.", type=int, minimum=1, aliases=("new_tokens",)),
            Option("iters", 5, "Timed scoring calls (after one warm-up).", type=int, minimum=1),
        ),
        weights=("shadow", "random"), items_per_chunk=1, always_new=True, takes_limit=False,
    )

    def check(self, spec, options) -> None:
        require_language_model(spec, SUITE)

    def plan(self, ctx: Context) -> Plan:
        o, vocab = ctx.options, ctx.spec.text_arch.vocab_size
        rng = random.Random(ctx.seed)
        tokens = lambda n: [rng.randrange(3, vocab) for _ in range(n)]  # noqa: E731 - ids past the usual specials

        def scoring(index: int, timed: bool) -> Item:
            windows = []
            for _ in range(o["batch_size"]):
                row = tokens(ctx.context)
                windows.append(TokenWindow(row[:1], row[1:]))
            return Item(index, tuple(windows), ("score", timed))

        def generation(index: int, new: int, timed: bool) -> Item:
            requests = tuple(GenerateRequest(tuple(tokens(o["prompt_tokens"])), max_new_tokens=new, ignore_eos=True)
                             for _ in range(o["gen_batch"]))
            return Item(index, requests, ("generate", timed))

        items = [scoring(0, False), *(scoring(i, True) for i in range(1, o["iters"] + 1))]
        # the warm-up generates the timed batch's shape: on CUDA the decode step is compiled with CUDA
        # graphs per (batch, cache length), so a shorter warm-up would leave the compilation in the timed call
        new = o["max_new_tokens"]
        items += [generation(len(items), new, False), generation(len(items) + 1, new, True)]
        options = {"batch": o["batch_size"], "gen_batch": o["gen_batch"], "prompt_tokens": o["prompt_tokens"],
                   "new_tokens": o["max_new_tokens"], "iters": o["iters"]}
        return Plan(None, None, None, items, options)

    def work(self, ctx: Context) -> Work:
        o = ctx.options
        scored = o["batch_size"] * (ctx.context - 1) * (o["iters"] + 1) + o["gen_batch"] * o["prompt_tokens"] * 2
        return Work(scored, o["gen_batch"] * o["max_new_tokens"] * 2, o["gen_batch"] * 2, "the suite's own shapes")

    def score(self, items: Sequence[Item], answers, seconds: float, ctx: Context, emit: Emit) -> None:
        for item, answer in zip(items, answers):
            kind, timed = item.data
            if kind == "score":
                count = sum(len(w.targets) for w in item.requests)
            else:
                count = sum(sum(g.new_tokens) for g in answer)
            emit(Sample(item.index, input_ref=f"{kind}{'' if timed else ' (warm-up)'}",
                        scores={"kind": kind, "timed": timed, "tokens": count, "seconds": seconds, "context": ctx.context}))

    def metrics(self, samples, seed: int, runner=None, state=None) -> list[dict[str, Any]]:
        timed = [s["scores"] for s in samples if s["scores"]["timed"]]
        rate = {kind: sum(s["tokens"] for s in timed if s["kind"] == kind) /
                sum(s["seconds"] for s in timed if s["kind"] == kind) for kind in ("score", "generate")}
        out = {"score_tokens_per_s": rate["score"], "generate_new_tokens_per_s": rate["generate"]}
        facts = runner.speed_facts(timed[0]["context"]) if runner is not None and hasattr(runner, "speed_facts") else {}
        if facts.get("matmul_peak_flops"):
            out["mfu"] = facts["model_flops_per_token"] * rate["score"] / facts["matmul_peak_flops"]
            out["matmul_peak_tflops"] = facts["matmul_peak_flops"] / 1e12
            out["model_gflops_per_token"] = facts["model_flops_per_token"] / 1e9
        if facts.get("peak_memory_gb") is not None:
            out["peak_gpu_memory_gb"] = facts["peak_memory_gb"]
        return [{"name": k, "value": float(v)} for k, v in out.items()]


suite = SpeedSuite()
