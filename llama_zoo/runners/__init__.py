"""How a model is loaded and run (transformers, vLLM) behind one request protocol."""
