"""Finishing permanent deletions that storage interrupted (§8): the worker and its routes."""
