"""A pickle payload for the refusal tests: unpickled by the standard unpickler it runs a shell."""

from __future__ import annotations

import os
from pathlib import Path


class ShellPayload:
    """Runs ``touch marker`` when unpickled by the standard unpickler (the safe reader refuses)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)
