"""Models a suite consults besides the one it evaluates (a Llama Guard judging another model's
replies): on the run's device and dtype, with shadow weights for a shadow run and the hub's
otherwise (unless the suite names other weights), named in the run's identity, loaded only when
the suite first asks it something."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class OtherModel:
    """A registry model with its weights source and tokenizer; ``runner`` loads on first use."""

    spec: Any
    source: Any
    tokenizer: Any
    tokenizer_source: str
    device: str
    dtype: str
    _runner: Any = field(default=None, repr=False)

    @property
    def identity(self) -> dict[str, Any]:
        """What makes a judged run differ: the judge, its weights and its tokenizer."""
        from llama_zoo.registry.catalog import spec_hash
        from llama_zoo.backends.tokenizers import tokenizer_hash

        return {"model": self.spec.id, "spec_hash": spec_hash(self.spec), "weights_source": self.source.kind,
                "weights_ref": self.source.ref, "weights_revision": self.source.revision,
                "weights_hash": self.source.content_hash, "tokenizer_hash": tokenizer_hash(self.tokenizer),
                "tokenizer_source": self.tokenizer_source, "device": self.device, "dtype": self.dtype}

    @property
    def runner(self):
        if self._runner is None:
            from llama_zoo.backends.hf import HFBackend

            self._runner = HFBackend(self.spec, self.source, device=self.device, dtype=self.dtype,
                                    loaded_tokenizer=(self.tokenizer, self.tokenizer_source))
        return self._runner


def opener(*, shadow: bool, seed: int, device: str, dtype: str):
    """``open_model(name, weights=None)`` for a suite: ``weights`` is ``shadow``, ``hub`` or a local
    checkpoint directory; by default a shadow run's judge is a shadow too, any other run's the hub's."""
    from llama_zoo.registry.catalog import load_catalog
    from llama_zoo.backends.hf import HFBackend
    from llama_zoo.backends.weights import choose_source

    opened: dict[tuple[str, str | None], OtherModel] = {}

    def open_model(name: str, weights: str | None = None) -> OtherModel:
        key = (name, weights)
        if key not in opened:
            spec = load_catalog().get(name)
            kind = weights or ("shadow" if shadow else "hub")
            source = choose_source(spec, shadow=kind == "shadow", weights=None if kind in ("shadow", "hub") else kind,
                                   seed=seed)
            resolved_device, resolved_dtype = HFBackend.resolve(device, dtype)
            tokenizer, tokenizer_source = HFBackend.load_tokenizer(spec, source)
            opened[key] = OtherModel(spec, source, tokenizer, tokenizer_source, resolved_device, resolved_dtype)
        return opened[key]

    return open_model

