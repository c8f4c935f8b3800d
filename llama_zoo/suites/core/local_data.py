"""Where data a user downloaded lives: the directories of ``$LLAMA_ZOO_DATA`` (an ``os.pathsep``
list), then the user data directory's ``data/``. A hub dataset is found there under its repo id
(``$LLAMA_ZOO_DATA/allenai/ai2_arc``), as ``huggingface-cli download --local-dir`` leaves it, so
one directory serves lm-eval tasks, Meta's evals datasets and the safety sets alike."""

from __future__ import annotations

import os
from pathlib import Path


def data_dirs() -> list[Path]:
    from platformdirs import user_data_dir

    dirs = [Path(p).expanduser() for p in os.environ.get("LLAMA_ZOO_DATA", "").split(os.pathsep) if p]
    return dirs + [Path(user_data_dir("llama-zoo")) / "data"]


def local_dataset(repo_id: str) -> Path | None:
    """The local snapshot of hub dataset ``repo_id``, if one is under a data directory."""
    for root in data_dirs():
        candidate = root / repo_id
        if candidate.is_dir():
            return candidate
    return None


def hub_offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def download_hint(repo_id: str) -> str:
    """How to get hub dataset ``repo_id`` where llama-zoo looks for it."""
    first = os.environ.get("LLAMA_ZOO_DATA", "").split(os.pathsep)[0] or "$LLAMA_ZOO_DATA"
    return f"huggingface-cli download --repo-type dataset {repo_id} --local-dir {first}/{repo_id}"
