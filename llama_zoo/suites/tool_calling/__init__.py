"""Tool calling: BFCL."""
