"""What makes two runs the same run (the config hash), and the provenance recorded beside it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

# external: completions produced elsewhere and only scored here (--samples-file); server: a model
# behind an OpenAI-compatible API (weights_ref holds the URL and the served model's name); imported:
# another tool's run of the weights (lm-eval output); published: the model's maker's own per-sample
# results (Meta's evals datasets), so they are a run apart from ours of the same rows
WEIGHTS_SOURCES = ("hub", "local", "random", "shadow", "external", "server", "imported", "published")

# How a run ran, where that may change its result (the loop's, not the suite's): the tokenizer's
# source and the device (every run where a model answers), the checkpoint's config differences from
# the registry, the quantisation scheme and a backend's own identifying options (only where there are some).
RUN_FACTS = ("tokenizer_source", "device", "weights_config_differences", "quantize", "backend_options")
# Recorded to be shown, never to tell runs apart: what a model given by path is (its id already
# holds a hash of its weights) and how the code sandbox isolated programs.
SHOWN = ("checkpoint", "sandbox")


@dataclass(frozen=True)
class RunConfig:
    """Everything that changes a result. Equal configs hash equal: a completed one is a cache hit.

    ``options`` are the suite's (``limit`` and ``context`` included), ``facts`` the run's (keys of
    ``RUN_FACTS``), ``shown`` what is only displayed (keys of ``SHOWN``). They are stored in one
    ``options`` column and hashed as that one mapping, as they were before the split, so every
    stored run keeps its hash: ``shown`` is hashed only for that reason, never compared by reports.
    """

    model_id: str
    spec_hash: str
    suite: str
    suite_version: str
    backend: str
    weights_source: str
    weights_ref: str | None = None  # hub repo id or local path
    weights_revision: str | None = None
    weights_hash: str | None = None  # content hash of local weights; the seed of a shadow
    tokenizer_hash: str | None = None
    dtype: str | None = None
    dataset_name: str | None = None
    dataset_revision: str | None = None
    dataset_hash: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # the suite's: protocol, generation, limit, context
    seed: int | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # the run's: RUN_FACTS
    shown: dict[str, Any] = field(default_factory=dict)  # only displayed: SHOWN

    def __post_init__(self) -> None:
        if self.weights_source not in WEIGHTS_SOURCES:
            raise ValueError(f"weights_source must be one of {WEIGHTS_SOURCES}, not {self.weights_source!r}")
        for name, part, allowed in (("facts", self.facts, RUN_FACTS), ("shown", self.shown, SHOWN)):
            if set(part) - set(allowed):
                raise ValueError(f"{name} takes {', '.join(allowed)}, not {', '.join(sorted(set(part) - set(allowed)))}")
        clash = set(self.options) & {*RUN_FACTS, *SHOWN}
        if clash:
            raise ValueError(f"suite options may not be named {', '.join(sorted(clash))}: the run records those")

    def columns(self) -> dict[str, Any]:
        """The stored run's identity columns: the three kinds of options as one mapping."""
        row = dataclasses.asdict(self)
        facts, shown = row.pop("facts"), row.pop("shown")
        row["options"] = {**row["options"], **facts, **shown}
        return row

    def config_hash(self) -> str:
        canonical = json.dumps(self.columns(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


def split_options(stored: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A stored run's ``options`` column as (the suite's options, the run's facts, what is only shown)."""
    stored = stored or {}
    parts: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = ({}, {}, {})
    for key, value in stored.items():
        parts[1 if key in RUN_FACTS else 2 if key in SHOWN else 0][key] = value
    return parts


def package_versions() -> dict[str, str | None]:
    """Versions of what shapes a result, read from package metadata (nothing is imported)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("llama-zoo", "torch", "transformers", "vllm", "datasets", "tokenizers", "lm-eval"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info() -> dict[str, Any]:
    """CPU always; GPUs when torch is already loaded (asking would otherwise import it)."""
    info: dict[str, Any] = {"cpu": _cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        info["gpu_count"] = torch.cuda.device_count()
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=10)
            info["driver"] = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else None
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    else:
        info["gpu_count"] = 0
    return info


def git_sha() -> str | None:
    """The commit of llama-zoo itself when it runs from a checkout (an installed wheel has none)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def this_process() -> tuple[str, int]:
    return socket.gethostname(), os.getpid()
