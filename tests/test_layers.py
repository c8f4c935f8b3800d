"""The package's one-way layering: a module imports only from its own layer or the layers above it
(registry -> backends -> suites -> results -> orchestration -> reports -> cli), and the reports and
the CLI name no suite."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "llama_zoo"
# shared utilities with no llama-zoo imports of their own sit above every layer
LAYERS = ["errors", "plugins", "formatting", "options", "hub", "machine_cache", "registry", "backends", "suites", "results", "orchestration", "reports", "cli"]
RANK = {name: (0 if name in ("errors", "plugins", "formatting", "options", "hub", "machine_cache") else LAYERS.index(name)) for name in LAYERS}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return "cli" if parts[1] == "__main__" else parts[1]


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("llama_zoo"):
            found.add(node.module if node.module != "llama_zoo" else f"llama_zoo.{node.names[0].name}")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("llama_zoo."))
    return found


def test_no_module_imports_a_layer_below_its_own():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        module = ".".join(("llama_zoo", *path.relative_to(PACKAGE).with_suffix("").parts))
        if module.endswith(".__init__"):
            module = module[: -len(".__init__")]
        if module == "llama_zoo":
            continue
        for target in imports(path):
            if RANK[layer_of(target)] > RANK[layer_of(module)]:
                upward.append(f"{module} imports {target}")
    assert upward == []


def test_reports_and_cli_name_no_suite():
    from llama_zoo.suites import SUITES

    names = [n for n in SUITES.builtins if n != "bench"]  # `bench` is also the command's own name
    # a suite name as a word of its own: "guard" inside the model id "llama-guard-3-1b" is not one
    pattern = re.compile("|".join(rf"(?<![\w-]){re.escape(n)}(?![\w-])" for n in names))
    hits = [f"{p.relative_to(PACKAGE)}: {line.strip()}" for folder in ("reports", "cli")
            for p in (PACKAGE / folder).rglob("*") if p.is_file() and p.suffix in (".py", ".j2")
            for line in p.read_text().splitlines() if pattern.search(line)]
    assert hits == []
