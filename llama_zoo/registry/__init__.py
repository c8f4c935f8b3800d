"""The model registry: what each Llama model is (schema, data, derived numbers)."""
