"""Run assembly."""
