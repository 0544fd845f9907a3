"""How an error names what would be valid: the closest choices first, long lists wrapped."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def closest_first(name: str, valid: Iterable[str]) -> list[str]:
    """``valid`` with the names closest to ``name`` (difflib) first, the others after."""
    import difflib

    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    return [*close, *(v for v in valid if v not in close)]


# An error's first line stays readable in a terminal and a log; what a list of valid choices
# needs beyond it goes on the lines that follow, wrapped at LIST_WIDTH.
MAX_ERROR_LINE = 200
LIST_WIDTH = 96
LIST_INDENT = "  "
# How every command prints a ConfigError.
ERROR_PREFIX = "error: "
# Choices shown on the first line: the closest matches to what was typed.
CLOSEST_SHOWN = 3


def listed(head: str, label: str, items: Iterable[Any]) -> str:
    """``head; label: a, b, c`` on one line when it is short; otherwise ``head; label:`` and
    the items wrapped on the indented lines that follow, so that an error naming the bad key
    stays one short line however many choices there are. Joined back (each line break and its
    indent read as one space) it is the one-line form.

    Args:
        head: the error itself (the bad key or value and what is wrong).
        label: what the list is (``valid keys``, ``valid choices``).
        items: the list.
    """
    import textwrap

    joined = ", ".join(map(str, items))
    inline = f"{head}; {label}: {joined}"
    if len(ERROR_PREFIX) + len(inline) <= MAX_ERROR_LINE:
        return inline
    body = textwrap.fill(joined, width=LIST_WIDTH, initial_indent=LIST_INDENT,
                         subsequent_indent=LIST_INDENT, break_long_words=False,
                         break_on_hyphens=False)
    return f"{head}; {label}:\n{body}"


def one_line(message: str) -> str:
    """A message of :func:`listed` as one line (each line break and its indent: one space)."""
    import re

    return re.sub(r"\n\s*", " ", message)


def closest_text(name: str, valid: Iterable[str]) -> str:
    """``; closest: a, b`` for the valid names nearest ``name`` (empty when none is near)."""
    import difflib

    close = difflib.get_close_matches(name, list(valid), n=CLOSEST_SHOWN, cutoff=0.6)
    return f"; closest: {', '.join(close)}" if close else ""
