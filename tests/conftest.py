"""Shared pytest fixtures. Each area adds its own in tests/support/ and imports them here."""
