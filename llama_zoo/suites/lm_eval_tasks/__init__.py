"""lm-eval's tasks as llama-zoo suites (`lm-eval:TASK`), and lm-eval's LM interface over our backends."""
