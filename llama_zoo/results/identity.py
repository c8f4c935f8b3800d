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
# behind an OpenAI-compatible API (weights_ref holds the URL and the served model's name)
WEIGHTS_SOURCES = ("hub", "local", "random", "shadow", "external", "server", "imported")


@dataclass(frozen=True)
class RunConfig:
    """Everything that changes a result. Equal configs hash equal: a completed one is a cache hit."""

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
    options: dict[str, Any] = field(default_factory=dict)  # protocol and generation options
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.weights_source not in WEIGHTS_SOURCES:
            raise ValueError(f"weights_source must be one of {WEIGHTS_SOURCES}, not {self.weights_source!r}")

    def config_hash(self) -> str:
        canonical = json.dumps(dataclasses.asdict(self), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()


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
