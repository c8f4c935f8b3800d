"""How long the tests' building blocks take on this machine: a shadow model of every registry entry
that has one, and the synthetic visual questions. The tests check what these make; their speed is
measured here, where a loaded machine makes a slow number, not a failed test.

    python benchmarks/build_speeds.py [--items 300]

(HumanEval's canonical solutions in the sandbox: benchmarks/humaneval_canonical.py.)
"""

from __future__ import annotations

import argparse
import os
import time


def shadow_builds() -> None:
    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.registry.to_transformers import model_class, shadow_config

    catalog = load_catalog()
    shadowable = [s for s in catalog if s.architecture is not None and not getattr(s.architecture, "output_vocab_size", None)]
    for spec in {s.model_type: s for s in shadowable}.values():  # transformers' lazy imports and first allocation first
        model_class(spec.model_type)(shadow_config(spec))
    times = []
    for spec in shadowable:
        start = time.perf_counter()
        model = model_class(spec.model_type)(shadow_config(spec))
        times.append((time.perf_counter() - start, spec.id, sum(p.numel() for p in model.parameters())))
    times.sort(reverse=True)
    print(f"{len(times)} shadow models built: {sum(t for t, _, _ in times):.2f} s in all; slowest:")
    for elapsed, model_id, params in times[:5]:
        print(f"  {model_id:40s} {elapsed:6.3f} s  {params / 1e6:5.1f}M parameters")


def synthetic_items(n: int) -> None:
    from llama_zoo.suites.vision.synthetic import generate

    start = time.perf_counter()
    items = list(generate(n, seed=0))
    print(f"{len(items)} synthetic visual questions: {time.perf_counter() - start:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=300, help="synthetic visual questions to generate")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs")
    shadow_builds()
    synthetic_items(args.items)


if __name__ == "__main__":
    main()
