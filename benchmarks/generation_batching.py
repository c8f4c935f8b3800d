"""Batched generation in the transformers runner against one request at a time, on CPU.

    python benchmarks/generation_batching.py [--limit 164] [--new-tokens 64] [--model llama-3.2-1b]
                                             [--batch-size N] [--threads N] [--weight-std STD] [--tokenizer PATH]

A shadow model (the registry's architecture shrunk, random weights) in float32 with the real
tokenizer, greedy HumanEval requests as a base model gets them (the prompt's ids, the Codex stop
strings, the model's end-of-text id). New tokens per second are counted over the tokens each
completion kept, first with ``runner.generate([request])`` for each request, then with
``runner.generate(requests)``, and the two sets of completions are compared.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=164, help="HumanEval problems (default: all 164)")
    parser.add_argument("--new-tokens", type=int, default=64, help="max_new_tokens of each request")
    parser.add_argument("--model", default="llama-3.2-1b", help="registry id of the shadow model")
    parser.add_argument("--batch-size", type=int, default=None, help="rows per batch (default: the runner's)")
    parser.add_argument("--weight-std", type=float, default=None,
                        help="redraw the shadow's matrices from N(0, STD), e.g. 0.2: the default shadow just repeats "
                             "its last prompt token, so only redrawn weights make the identity check strict")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--tokenizer", default=str(ROOT.parent / "shared" / "tokenizers" / "llama3"),
                        help="the real tokenizer's directory (default: ../shared/tokenizers/llama3)")
    parser.add_argument("--random-weights", action="store_true",
                        help="the full-size architecture with random weights instead of the shadow (a GPU run)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--dtype", default="float32", help="float32 or bfloat16 (the GPU figure is bfloat16)")
    args = parser.parse_args()

    import torch
    import transformers
    from transformers import AutoTokenizer

    from llama_zoo.suites.code import humaneval
    from llama_zoo.suites.core.base import eos_ids
    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.results.identity import device_info
    from llama_zoo.backends.base import GenerateRequest
    from llama_zoo.backends.hf import HFBackend
    from llama_zoo.backends.weights import choose_source

    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.tokenizer).is_dir():
        sys.exit(f"no tokenizer at {args.tokenizer}: pass --tokenizer PATH")
    print("command: python " + shlex.join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]))
    print(f"machine: {device_info()['cpu']}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, "
          f"Python {platform.python_version()}")
    print("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    spec = load_catalog().get(args.model)
    source = choose_source(spec, shadow=not args.random_weights, random_weights=args.random_weights)
    runner = HFBackend(spec, source, device=args.device, dtype=args.dtype,
                      batch_size=args.batch_size, loaded_tokenizer=(tokenizer, "benchmark"))
    if args.weight_std:
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in runner.model.parameters():
                if p.dim() == 2 and p.is_floating_point():
                    p.normal_(0.0, args.weight_std, generator=generator)
    problems = list(humaneval.load_problems().tasks.values())[:args.limit]
    requests = [GenerateRequest(tuple(tokenizer(p["prompt"]).input_ids), max_new_tokens=args.new_tokens,
                                stop_strings=humaneval.STOP_STRINGS, stop_token_ids=eos_ids(spec))
                for p in problems]
    lengths = sorted(len(r.prompt) for r in requests)
    c = runner.body.config
    batch = args.batch_size or f"the default, {runner._generation_batch_for(1)[1]}"
    redrawn = f", weights redrawn with std {args.weight_std}" if args.weight_std else ""
    print(f"model: {source.kind} {spec.id} ({c.num_hidden_layers} layers, hidden {c.hidden_size}, vocabulary {c.vocab_size}), "
          f"{args.dtype}{redrawn}, {args.device}; {len(requests)} greedy HumanEval prompts of {lengths[0]}-{lengths[-1]} tokens "
          f"(median {lengths[len(lengths) // 2]}), up to {args.new_tokens} new tokens; rows per batch: {batch}")

    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    runner.generate(requests[:2])  # warm-up: first calls allocate (and, on CUDA, compile)
    sync()
    start = time.perf_counter()
    one = [runner.generate([r])[0] for r in requests]
    sync()
    single_s = time.perf_counter() - start
    start = time.perf_counter()
    batched = runner.generate(requests)
    sync()
    batched_s = time.perf_counter() - start

    single_tokens = sum(g.new_tokens[0] for g in one)
    batched_tokens = sum(g.new_tokens[0] for g in batched)
    same = sum(a == b for a, b in zip(one, batched))
    for name, tokens, seconds in (("one at a time", single_tokens, single_s), ("batched", batched_tokens, batched_s)):
        print(f"{name + ':':14} {tokens} new tokens in {seconds:.2f} s = {tokens / seconds:.1f} tokens/s")
    ratio = (batched_tokens / batched_s) / (single_tokens / single_s)
    print("load average at end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print(f"batched / one at a time: {ratio:.2f}x tokens/s; "
          f"identical completions (tokens and texts): {same}/{len(requests)}")


if __name__ == "__main__":
    main()
