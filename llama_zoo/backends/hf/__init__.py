"""The transformers backend, ``HFBackend``, split by concern: ``runner`` (loading, identity,
provenance), ``scoring`` (log-likelihoods, the batch that fits), ``generation`` (the decode
loops), ``vision`` (image + text), ``speed`` (facts for ``bench``), ``common`` (device, dtype,
autograd)."""

from llama_zoo.backends.hf.common import pick_device, pick_dtype, without_autograd
from llama_zoo.backends.hf.runner import HFBackend

__all__ = ["HFBackend", "pick_device", "pick_dtype", "without_autograd"]
