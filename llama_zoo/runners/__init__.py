"""How a model is loaded and run: the backends, looked up by name."""

from llama_zoo.plugins import PluginTable

# One line per backend; third-party backends register under the entry-point group below.
BACKENDS = PluginTable("backend", "llama_zoo.backends", {
    "hf": "llama_zoo.runners.hf:HFRunner",
    "vllm": "llama_zoo.runners.vllm:VLLMRunner",
    "llama.cpp": "llama_zoo.runners.llamacpp:LlamaCppRunner",
    "openai": "llama_zoo.runners.openai_api:OpenAIRunner",
})
