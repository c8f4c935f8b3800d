"""Models outside the registry: a transformers checkpoint directory or a GGUF file, described as a
registry entry read from its own files, so it is evaluated, stored and charted as itself.

Its architecture comes from ``config.json`` (or the GGUF metadata), its tokenizer facts (kind,
special ids, chat format) from its tokenizer files, and its id is its name plus a hash of its
weights: two different fine-tunes never share an id, and never borrow a registry id. ``base`` (a
registry id) adds lineage, the family, and what the files cannot say (Code Llama's FIM tokens).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from llama_zoo.errors import LlamaZooError
from llama_zoo.machine_cache import remembered_digest
from llama_zoo.registry.schema import ModelSpec

GGUF_MAGIC = b"GGUF"
# GGUF file types (llama.cpp's LLAMA_FTYPE_*): what the quantisation of a file is called
GGUF_FILE_TYPES = {0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
                   11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
                   17: "Q5_K_M", 18: "Q6_K", 32: "BF16"}


class CheckpointError(LlamaZooError):
    pass


@dataclass(frozen=True)
class Checkpoint:
    """Where a model outside the registry lives and what its weights are."""

    path: str  # the directory (transformers) or the .gguf file
    content_hash: str
    gguf_file: str | None = None  # the file's name inside ``directory`` when it is a GGUF
    quantization: str | None = None  # GGUF file type (Q4_1, F32, ...)

    @property
    def directory(self) -> str:
        return str(Path(self.path).parent) if self.gguf_file else self.path


def looks_like_path(name: str) -> bool:
    """Written as a path (``./dir``, ``/abs``, ``~/x``, ``x.gguf``): never a registry name."""
    return name.endswith(".gguf") or name.startswith(("/", "./", "../", "~"))


def from_path(name: str, base: ModelSpec | None = None) -> tuple[ModelSpec, Checkpoint]:
    path = Path(name).expanduser()
    if not path.exists():
        raise CheckpointError(f"{name}: no such file or directory")
    if path.is_file():
        return _from_gguf(path, base)
    return _from_directory(path, base)


# --------------------------------------------------------------------------- transformers directories


def _from_directory(path: Path, base: ModelSpec | None) -> tuple[ModelSpec, Checkpoint]:
    config_file = path / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"{path}: no config.json (a transformers checkpoint directory or a .gguf file is needed)")
    try:
        config = json.loads(config_file.read_text())
    except json.JSONDecodeError:
        raise CheckpointError(f"{config_file} is not JSON") from None
    if config.get("model_type") != "llama":
        raise CheckpointError(f"{path}: model_type {config.get('model_type')!r}; llama-zoo evaluates Llama-architecture "
                              "checkpoints (model_type llama)")
    tokenizer = _tokenizer_facts(path, config)
    arch = {k: config[k] for k in _LLAMA_KEYS if config.get(k) is not None}
    arch.update(model_type="llama", torch_dtype=_dtype(config.get("torch_dtype") or config.get("dtype")))
    name = Path(config.get("_name_or_path") or path.name).name or path.name
    digest = hash_file_list(sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin") or p.name == "config.json"))
    spec = _spec(name, digest, arch, tokenizer, base)
    return spec, Checkpoint(str(path.resolve()), digest)


_LLAMA_KEYS = ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
               "head_dim", "vocab_size", "max_position_embeddings", "rope_theta", "rope_scaling", "rms_norm_eps",
               "tie_word_embeddings", "attention_bias", "mlp_bias")


def _dtype(value: Any) -> str:
    value = str(value or "float32").removeprefix("torch.")
    return value if value in ("float16", "bfloat16", "float32") else "float32"


def _tokenizer_facts(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    tok_file, tok_config_file = path / "tokenizer.json", path / "tokenizer_config.json"
    if not tok_file.is_file() and not (path / "tokenizer.model").is_file():
        raise CheckpointError(f"{path}: no tokenizer (tokenizer.json or tokenizer.model); copy the tokenizer files of "
                              "the model it was trained from into the directory")
    try:
        tok_config = json.loads(tok_config_file.read_text()) if tok_config_file.is_file() else {}
    except json.JSONDecodeError:
        raise CheckpointError(f"{tok_config_file} is not JSON") from None
    kind, size, vocab = "sentencepiece-bpe", config.get("vocab_size"), {}
    if tok_file.is_file():
        data = json.loads(tok_file.read_text())
        model = data.get("model", {})
        vocab = dict(model.get("vocab") or {})
        vocab.update({t["content"]: t["id"] for t in data.get("added_tokens", [])})
        size = len(vocab) or size
        if model.get("type") == "BPE" and not model.get("byte_fallback"):
            kind = "byte-level-bpe"
        elif len(vocab) > 100_000:
            kind = "tiktoken-bpe"
    template = tok_config.get("chat_template")
    if template is None and (path / "chat_template.jinja").is_file():
        template = (path / "chat_template.jinja").read_text()
    generation = path / "generation_config.json"
    eos = json.loads(generation.read_text()).get("eos_token_id") if generation.is_file() else None
    return {"kind": kind, "size": size, "bos_token_id": config.get("bos_token_id"),
            "eos_token_id": eos if eos is not None else config.get("eos_token_id"),
            "pad_token_id": config.get("pad_token_id"), "chat_format": chat_format(template)}


def chat_format(template: str | None) -> str | None:
    if not template:
        return None
    for marker, name in (("<|im_start|>", "chatml"), ("<|start_header_id|>", "llama3-header"),
                         ("<|header_start|>", "llama4-header"), ("[INST]", "llama2-inst")):
        if marker in template:
            return name
    return None


# --------------------------------------------------------------------------- GGUF files


def _from_gguf(path: Path, base: ModelSpec | None) -> tuple[ModelSpec, Checkpoint]:
    with open(path, "rb") as handle:
        if handle.read(4) != GGUF_MAGIC:
            raise CheckpointError(f"{path} is not a GGUF file (no GGUF magic number)")
    try:
        import gguf  # noqa: F401 - only whether it is there
    except ImportError:
        raise CheckpointError("reading a .gguf file needs the gguf package: pip install 'llama-zoo[gguf]'") from None
    from llama_zoo.registry.gguf_files import reader as gguf_reader

    try:
        reader = gguf_reader(str(path))  # parsed once for this description and the loads after it
    except Exception as exc:  # noqa: BLE001 - a damaged file, whatever the parser says
        raise CheckpointError(f"{path}: not a readable GGUF file ({type(exc).__name__}: {exc})") from None
    meta = {key: _field(field) for key, field in reader.fields.items() if not key.startswith("tokenizer.ggml.merges")}
    arch_name = meta.get("general.architecture")
    if arch_name != "llama":
        raise CheckpointError(f"{path}: architecture {arch_name!r}; llama-zoo evaluates Llama-architecture models")
    try:
        arch, tokenizer = _gguf_facts(reader, meta)
    except (TypeError, ValueError) as exc:  # a key missing or of another type
        raise CheckpointError(f"{path}: its metadata does not describe a Llama model ({exc})") from None
    name = str(meta.get("general.basename") or meta.get("general.name") or path.stem)
    if meta.get("general.size_label"):
        name = f"{name}-{meta['general.size_label']}"
    digest = hash_file_list([path])
    quantization = GGUF_FILE_TYPES.get(int(meta.get("general.file_type", -1)), f"file type {meta.get('general.file_type')}")
    spec = _spec(f"{name}-{quantization}", digest, arch, tokenizer, base)
    return spec, Checkpoint(str(path.resolve()), digest, gguf_file=path.name, quantization=quantization)


def _gguf_facts(reader, meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    g = lambda key, default=None: meta.get(f"llama.{key}", default)  # noqa: E731
    heads = int(g("attention.head_count"))
    tokens = meta.get("tokenizer.ggml.tokens") or []
    tied = not any(t.name == "output.weight" for t in reader.tensors)
    arch = {"model_type": "llama", "num_hidden_layers": int(g("block_count")), "hidden_size": int(g("embedding_length")),
            "intermediate_size": int(g("feed_forward_length")), "num_attention_heads": heads,
            "num_key_value_heads": int(g("attention.head_count_kv", heads)),
            "vocab_size": int(g("vocab_size", len(tokens))), "max_position_embeddings": int(g("context_length")),
            "rope_theta": float(g("rope.freq_base", 10000.0)), "rms_norm_eps": float(g("attention.layer_norm_rms_epsilon")),
            "tie_word_embeddings": tied, "torch_dtype": "float32"}
    head_dim = g("rope.dimension_count")
    if head_dim and int(head_dim) != arch["hidden_size"] // heads:
        arch["head_dim"] = int(head_dim)
    tokenizer = {"kind": "byte-level-bpe" if meta.get("tokenizer.ggml.model") == "gpt2" else "sentencepiece-bpe",
                 "size": len(tokens) or arch["vocab_size"], "bos_token_id": meta.get("tokenizer.ggml.bos_token_id"),
                 "eos_token_id": meta.get("tokenizer.ggml.eos_token_id"),
                 "pad_token_id": meta.get("tokenizer.ggml.padding_token_id"),
                 "chat_format": chat_format(meta.get("tokenizer.chat_template"))}
    return arch, tokenizer


def _field(field) -> Any:
    try:
        return field.contents()
    except Exception:  # noqa: BLE001 - an exotic value type: not one we read
        return None


# --------------------------------------------------------------------------- shared


def hash_file_list(files: list[Path]) -> str:
    """SHA-256 over files' names and bytes, in the order given, streamed; remembered on this machine
    while the files are unchanged (``machine_cache.remembered_digest``)."""
    return remembered_digest(files, _read_and_hash)


def _read_and_hash(files: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.name.encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-")


def _spec(name: str, digest: str, arch: dict[str, Any], tokenizer: dict[str, Any], base: ModelSpec | None) -> ModelSpec:
    capabilities: dict[str, Any] = {"instruct": tokenizer.get("chat_format") is not None}
    if base is not None:
        capabilities["code"] = base.capabilities.code
        if base.tokenizer and base.tokenizer.fim and tokenizer["size"] >= base.tokenizer.size:
            tokenizer = {**tokenizer, "fim": base.tokenizer.fim.model_dump()}
    try:
        return ModelSpec.model_validate({
            "id": f"{slug(name)}-{digest[:8]}", "name": name, "family": base.family if base else "community",
            "architecture": arch, "tokenizer": {k: v for k, v in tokenizer.items() if v is not None},
            "capabilities": capabilities,
            "derived_from": {"parent": base.id, "how": "fine-tuned"} if base else None,
            "notes": "read from the checkpoint's own files",
        })
    except ValueError as exc:
        first = str(exc).splitlines()
        raise CheckpointError(f"{name}: its config does not describe a Llama model llama-zoo can run "
                              f"({first[1] if len(first) > 1 else first[0]}: {first[2].strip() if len(first) > 2 else ''})") from None


def find_model(name: str, base: str | None = None) -> tuple[ModelSpec, Checkpoint | None]:
    """A registry model by id, hub repo id or alias; or, for a path, the checkpoint there."""
    from llama_zoo.registry.catalog import load_catalog

    catalog = load_catalog()
    if not looks_like_path(name):
        try:
            spec = catalog.get(name)  # a registry name wins over a folder of the same name here
        except LlamaZooError:
            if not Path(name).expanduser().exists():
                raise
        else:
            if base:
                raise CheckpointError(f"--base names the registry model a checkpoint derives from; {name} is a "
                                      "registry model already")
            return spec, None
    return from_path(name, catalog.get(base) if base else None)
