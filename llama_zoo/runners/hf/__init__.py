"""The transformers backend, ``HFRunner``, split by concern: ``runner`` (loading, identity,
provenance), ``scoring`` (log-likelihoods, the batch that fits), ``generation`` (the decode
loops), ``vision`` (image + text), ``speed`` (facts for ``bench``), ``common`` (device, dtype,
autograd)."""

from llama_zoo.runners.hf.common import pick_device, pick_dtype, without_autograd
from llama_zoo.runners.hf.runner import HFRunner

__all__ = ["HFRunner", "pick_device", "pick_dtype", "without_autograd"]
