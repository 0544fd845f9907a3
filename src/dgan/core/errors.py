"""The error every command prints as one line: bad input, named.

A :class:`ConfigError` is raised wherever a key, a value or a file cannot work, before expensive
work starts; the commands print it as ``error: MESSAGE`` and exit with status 2.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value or key that cannot work; the message names it."""
