"""The perplexity suite and the corpora it reads."""
