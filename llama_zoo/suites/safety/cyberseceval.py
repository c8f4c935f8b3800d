"""CyberSecEval's test-case files, shared by its suites: a case with the reply made elsewhere for
it (``--samples-file``, ``{"prompt_id", "response"}`` lines)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.suites.safety.data import read_records


@dataclass(frozen=True)
class Case:
    """One CyberSecEval test case, and its reply when it was made elsewhere."""

    case: dict[str, Any]
    response: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.case.get('variant', 'case')}-{self.case['prompt_id']}"


def read_responses(path: str, cases: Sequence[dict[str, Any]], all_cases: Sequence[dict[str, Any]]) -> list[Case]:
    """``{"prompt_id", "response"}`` lines: replies made elsewhere, several per case allowed; replies
    to cases outside the selection (``--language``, ``--limit``) are left out."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise LlamaZooError(f"--samples-file {path}: no such file")
    by_id = {str(c["prompt_id"]): c for c in all_cases}
    wanted = {str(c["prompt_id"]) for c in cases}
    out = []
    for n, rec in enumerate(read_records(file), 1):
        if not isinstance(rec, dict) or "prompt_id" not in rec or not isinstance(rec.get("response"), str):
            raise LlamaZooError(f"{path}: row {n}: expected {{\"prompt_id\": ..., \"response\": ...}}")
        case = by_id.get(str(rec["prompt_id"]))
        if case is None:
            raise LlamaZooError(f"{path}: row {n}: prompt_id {rec['prompt_id']!r} is not in the dataset")
        if str(rec["prompt_id"]) in wanted:
            out.append(Case(case, rec["response"]))
    if not out:
        raise LlamaZooError(f"{path}: no responses to the test cases asked for")
    return out
