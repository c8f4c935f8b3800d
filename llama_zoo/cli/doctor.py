"""``llama-zoo doctor``: what this machine gives llama-zoo, and what it does not."""

from __future__ import annotations

import importlib.util
import os
import sys

from llama_zoo.cli.common import console


def doctor_command() -> None:
    """What this machine provides: the sandbox's isolation for model-written code (and why not more),
    the interpreter programs run under, and which optional engines are installed."""
    from rich.table import Table

    from llama_zoo.suites.code.sandbox import ISOLATION, NONE, _isolation, isolation, sandbox_python

    kind, why = isolation()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("user", f"{'root' if os.geteuid() == 0 else 'not root'} (uid {os.geteuid()})")
    table.add_row("sandbox", ISOLATION[kind] + (f"\n{why}" if why else ""))
    table.add_row("sandbox python", sandbox_python(_isolation()[1]))
    table.add_row("python", f"{sys.version.split()[0]} at {sys.executable}")
    for name, module in (("torch", "torch"), ("transformers", "transformers"), ("llama.cpp", "llama_cpp"),
                         ("vllm", "vllm"), ("lm-eval", "lm_eval"), ("ray", "ray")):
        table.add_row(name, "installed" if importlib.util.find_spec(module) else "-")
    console.print(table, highlight=False)
    if kind == NONE:
        console.print("the code suites refuse model-written programs here unless you pass --unsafe-no-isolation",
                      highlight=False)
