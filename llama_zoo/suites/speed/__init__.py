"""The `bench` suite: speed through the same backend calls evaluation uses."""
