"""Test doubles for the outside world (never for our own code)."""
