"""The one exception type for errors a user can cause: the CLI prints its message as one line."""


class LlamaZooError(Exception):
    """Unknown model, bad option, unreachable database...: a message for the user, not a bug."""
