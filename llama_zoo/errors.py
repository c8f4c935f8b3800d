"""The one exception type for errors a user can cause: the CLI prints its message as one line."""


class LlamaZooError(Exception):
    """Unknown model, bad option, unreachable database...: a message for the user, not a bug."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with what it left behind (which run, how much of it is stored): still a
    KeyboardInterrupt for whatever waits for one, and one line for the user."""
