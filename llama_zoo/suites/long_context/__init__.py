"""Long-context suites: needles in a haystack (``needle``)."""
