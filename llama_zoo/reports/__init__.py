"""Leaderboards and comparisons drawn from the results store."""
