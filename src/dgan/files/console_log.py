"""``train.log``: everything a run prints, kept in its run directory.

:class:`ConsoleLog` copies ``sys.stdout`` and ``sys.stderr`` into a file while it is open (the
prints of dgan, the status lines, warnings, errors); Hydra's own file handler adds the logging
records to the same file. The progress bar is drawn on the terminal only: while it is shown,
prints pass through its console (:meth:`ConsoleLog.show_through`) so that they appear above it
instead of tearing it.
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, TextIO

LOG_FILE = "train.log"


class _Tee(io.TextIOBase):
    """A text stream that writes to the log file and to the terminal (or the bar's console)."""

    def __init__(self, terminal: TextIO, log: TextIO) -> None:
        super().__init__()
        self.terminal = terminal
        self.log = log
        self.through: TextIO | None = None

    def write(self, text: str) -> int:
        self.log.write(text)
        if "\n" in text:
            self.log.flush()  # a crash keeps every finished line
        (self.through or self.terminal).write(text)
        return len(text)

    def flush(self) -> None:
        self.log.flush()
        (self.through or self.terminal).flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()

    def fileno(self) -> int:
        return self.terminal.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.terminal, "encoding", "utf-8")


class ConsoleLog:
    """While open, ``sys.stdout`` and ``sys.stderr`` are also appended to ``path``.

    Args:
        path: the log file (created with the permissions ``open`` gives under the umask).
    """

    _current: ClassVar[ConsoleLog | None] = None

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file: TextIO | None = None
        self._saved: tuple[Any, Any] | None = None
        self._tees: tuple[_Tee, _Tee] | None = None

    @classmethod
    def current(cls) -> ConsoleLog | None:
        """The open console log of this process, if any."""
        return cls._current

    @property
    def terminal(self) -> TextIO:
        """The stdout the log copies (where a progress bar should draw)."""
        assert self._tees is not None, "the console log is not open"
        return self._tees[0].terminal

    def show_through(self, console: Any) -> None:
        """Send prints through a rich ``console`` (above its live bar), or directly (None)."""
        if self._tees is None:
            return
        if console is None:
            for tee in self._tees:
                if tee.through is not None:
                    tee.through.flush()
                tee.through = None
            return
        from rich.file_proxy import FileProxy

        for tee in self._tees:
            tee.through = FileProxy(console, tee.terminal)  # type: ignore[assignment]

    def __enter__(self) -> ConsoleLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8")
        self._saved = (sys.stdout, sys.stderr)
        self._tees = (_Tee(sys.stdout, self._file), _Tee(sys.stderr, self._file))
        sys.stdout, sys.stderr = self._tees
        ConsoleLog._current = self
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.show_through(None)
        assert self._saved is not None and self._file is not None
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = self._saved
        self._file.close()
        self._tees = None
        if ConsoleLog._current is self:
            ConsoleLog._current = None
