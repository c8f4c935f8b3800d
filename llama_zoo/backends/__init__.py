"""How a model is loaded and run: the backends, looked up by name."""

import logging

from llama_zoo.plugins import PluginTable

# transformers imports torchao and bitsandbytes when they are installed; their notes about optional
# kernels this machine lacks (CUDA-only .so files, a CPU kernel package) would cut through every
# command's output. Their errors still show.
for _name in ("torchao", "bitsandbytes", "torch.utils._pytree"):
    logging.getLogger(_name).setLevel(logging.ERROR)

# One line per backend; third-party backends register under the entry-point group below.
BACKENDS = PluginTable("backend", "llama_zoo.backends", {
    "hf": "llama_zoo.backends.hf:HFBackend",
    "vllm": "llama_zoo.backends.vllm:VLLMBackend",
    "llama.cpp": "llama_zoo.backends.llamacpp:LlamaCppBackend",
    "openai": "llama_zoo.backends.openai_api:OpenAIBackend",
})
