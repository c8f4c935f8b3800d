"""Tokenizers: the checkpoint's own, a local directory, a cached hub copy, or a byte-level
stand-in for shadow runs that have no real one (said so in provenance)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from llama_zoo.registry.schema import ModelSpec
from llama_zoo.runners.base import RunnerError
from llama_zoo.runners.weights import WeightsSource, hub_kwargs

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def load_tokenizer(spec: ModelSpec, source: WeightsSource, tokenizer: str | None = None) -> tuple["PreTrainedTokenizerBase", str]:
    """The tokenizer and where it came from. Shadow and random runs use ``--tokenizer PATH``, else a
    cached copy of the hub tokenizer, else a byte-level stand-in (said so in provenance)."""
    from transformers import AutoTokenizer

    if tokenizer:
        if not Path(tokenizer).expanduser().exists():
            raise RunnerError(f"--tokenizer {tokenizer}: no such directory")
        return AutoTokenizer.from_pretrained(Path(tokenizer).expanduser()), f"local:{tokenizer}"
    if source.kind in ("local", "hub"):
        kwargs = {"revision": source.revision, **hub_kwargs()} if source.kind == "hub" else {}
        if source.gguf_file:
            kwargs["gguf_file"] = source.gguf_file
        try:
            return AutoTokenizer.from_pretrained(source.directory, **kwargs), f"{source.kind}:{source.ref}"
        except (OSError, ValueError) as exc:
            raise RunnerError(f"cannot load the tokenizer of {source.ref}: {' '.join(str(exc).split())[:300]}") from None
    if spec.hf_repo:
        try:
            return AutoTokenizer.from_pretrained(spec.hf_repo, local_files_only=True), f"hub-cache:{spec.hf_repo}"
        except (OSError, ValueError):
            pass
    return byte_level_tokenizer(spec), "byte-level-stand-in"


def byte_level_tokenizer(spec: ModelSpec) -> "PreTrainedTokenizerBase":
    """A tokenizer for shadow runs where no real one is at hand: one token per byte, with the
    model's real BOS/EOS ids, so every code path (windows, special tokens, decoding) still runs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from llama_zoo.registry.schema import DebertaV2Arch

    tok = spec.tokenizer
    text = spec.text_arch
    classifier = isinstance(spec.architecture, DebertaV2Arch)
    if tok is None or (text is None and not classifier):
        raise RunnerError(f"{spec.id} has no text tokenizer to stand in for")
    if classifier:  # DeBERTa-v3 vocabularies: [PAD] 0, [CLS] 1, [SEP] 2; inputs are [CLS] text [SEP]
        named, vocab_size = {"[CLS]": 1, "[SEP]": 2, "[PAD]": tok.pad_token_id or 0}, spec.architecture.vocab_size
    else:
        bos = tok.bos_token_id if tok.bos_token_id is not None else 1
        eos_ids = tok.eos_token_id if isinstance(tok.eos_token_id, list) else [tok.eos_token_id or 2]
        # the model's special ids keep their meaning: BOS, EOS and, for Code Llama, the FIM tokens
        named = {"<s>": bos, "</s>": eos_ids[0]}
        if tok.fim:
            named.update({"▁<PRE>": tok.fim.prefix, "▁<SUF>": tok.fim.suffix, "▁<MID>": tok.fim.middle, "▁<EOT>": tok.fim.eot})
        vocab_size = text.vocab_size
    specials = {*named.values(), *([] if classifier else eos_ids)}
    byte_chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    ids = [i for i in range(3, vocab_size) if i not in specials][: len(byte_chars)]
    vocab = dict(zip(byte_chars, ids))
    vocab.update(named)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    if classifier:
        core.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)])
        return PreTrainedTokenizerFast(tokenizer_object=core, cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]")
    core.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<s>", eos_token="</s>",
                                   additional_special_tokens=[n for n in named if n not in ("<s>", "</s>")])
    return fast


def tokenizer_hash(tokenizer: "PreTrainedTokenizerBase") -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    payload = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
