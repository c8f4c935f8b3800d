"""Tokenizers: the checkpoint's own, a local directory, a cached hub copy, or a byte-level
stand-in for shadow runs that have no real one (said so in provenance)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from llama_zoo.registry.schema import ModelSpec
from llama_zoo.backends.base import BackendError
from llama_zoo.backends.weights import WeightsSource, hub_kwargs

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def load_tokenizer(spec: ModelSpec, source: WeightsSource, tokenizer: str | None = None) -> tuple["PreTrainedTokenizerBase", str]:
    """The tokenizer and where it came from. Shadow and random runs use ``--tokenizer PATH``, else a
    cached copy of the hub tokenizer, else a byte-level stand-in (said so in provenance)."""
    from transformers import AutoTokenizer

    if tokenizer:
        if not Path(tokenizer).expanduser().exists():
            raise BackendError(f"--tokenizer {tokenizer}: no such directory")
        return AutoTokenizer.from_pretrained(Path(tokenizer).expanduser()), f"local:{tokenizer}"
    if source.kind in ("local", "hub"):
        kwargs = {"revision": source.revision, **hub_kwargs()} if source.kind == "hub" else {}
        if source.gguf_file:
            kwargs["gguf_file"] = source.gguf_file
        try:
            if source.gguf_file:
                from llama_zoo.registry.gguf_files import read_once

                with read_once():
                    return AutoTokenizer.from_pretrained(source.directory, **kwargs), f"{source.kind}:{source.ref}"
            return AutoTokenizer.from_pretrained(source.directory, **kwargs), f"{source.kind}:{source.ref}"
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot load the tokenizer of {source.ref}: {' '.join(str(exc).split())[:300]}") from None
    if spec.hf_repo:
        try:
            return AutoTokenizer.from_pretrained(spec.hf_repo, local_files_only=True), f"hub-cache:{spec.hf_repo}"
        except (OSError, ValueError):
            pass
    return byte_level_tokenizer(spec), "byte-level-stand-in"


def byte_level_tokenizer(spec: ModelSpec) -> "PreTrainedTokenizerBase":
    """A tokenizer for shadow runs where no real one is at hand: one token per byte, with the
    model's real special tokens (BOS, EOS, the registry's named tokens such as ``<|image|>``, Code
    Llama's FIM tokens) at their real ids, so every code path (windows, image placeholders, special
    tokens, decoding) still runs."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    from llama_zoo.registry.schema import DebertaV2Arch

    tok = spec.tokenizer
    text = spec.text_arch
    classifier = isinstance(spec.architecture, DebertaV2Arch)
    if tok is None or (text is None and not classifier):
        raise BackendError(f"{spec.id} has no text tokenizer to stand in for")
    if classifier:  # DeBERTa-v3 vocabularies: [PAD] 0, [CLS] 1, [SEP] 2; inputs are [CLS] text [SEP]
        named, vocab_size = {"[CLS]": 1, "[SEP]": 2, "[PAD]": tok.pad_token_id or 0}, spec.architecture.vocab_size
    else:
        bos = tok.bos_token_id if tok.bos_token_id is not None else 1
        eos_ids = tok.eos_token_id if isinstance(tok.eos_token_id, list) else [tok.eos_token_id or 2]
        # one name per id: the registry's name where it has one (<|begin_of_text|>), else <s> and </s>
        by_id = {bos: "<s>", eos_ids[0]: "</s>"}
        if tok.fim:
            by_id.update({tok.fim.prefix: "▁<PRE>", tok.fim.suffix: "▁<SUF>", tok.fim.middle: "▁<MID>",
                          tok.fim.eot: "▁<EOT>"})
        by_id.update({i: name for name, i in tok.special_tokens.items()})
        named = {name: i for i, name in by_id.items()}
        # a model's embedding may end before a token the tokenizer has (Mllama's <|image|> is id 128256
        # of 128256 text rows plus 8 image rows): the vocabulary covers every named id
        vocab_size = max(text.vocab_size, max(named.values()) + 1)
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
    bos_name, eos_name = by_id[bos], by_id[eos_ids[0]]
    core.post_processor = processors.TemplateProcessing(single=f"{bos_name} $A", pair=f"{bos_name} $A {bos_name} $B",
                                                        special_tokens=[(bos_name, bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=bos_name, eos_token=eos_name,
                                   additional_special_tokens=[n for n in named if n not in (bos_name, eos_name)])
    return fast


def tokenizer_hash(tokenizer: "PreTrainedTokenizerBase") -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    payload = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()
