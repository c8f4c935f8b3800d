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
    "hf": "llama_zoo.runners.hf:HFRunner",
    "vllm": "llama_zoo.runners.vllm:VLLMRunner",
    "llama.cpp": "llama_zoo.runners.llamacpp:LlamaCppRunner",
    "openai": "llama_zoo.runners.openai_api:OpenAIRunner",
})
