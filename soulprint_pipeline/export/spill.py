"""Keeping a huge conversation's message texts on disk rather than in memory.

A conversation's rows can be cut only once its active branch is known, and that is known only
once the whole conversation is parsed. For ordinary conversations the texts wait in memory; a
long-running chat with 100 MB of pasted documents would not fit the reader's memory budget
(Python holds non-ASCII text at up to four bytes a character), so past a budget its texts wait
in a temporary file instead and are read back as its rows are batched.
"""

from __future__ import annotations

import tempfile
from typing import IO


class SpilledText:
    """Where one message's text waits in the spill file; ``len()`` is its length in characters."""

    __slots__ = ("offset", "nbytes", "chars")

    def __init__(self, offset: int, nbytes: int, chars: int) -> None:
        self.offset = offset
        self.nbytes = nbytes
        self.chars = chars

    def __len__(self) -> int:
        return self.chars


class TextSpill:
    """Holds up to ``budget_chars`` of a conversation's texts in memory, the rest on disk.

    Texts are kept as UTF-8 (about a quarter of what Python holds for non-ASCII text, and the
    encoding Arrow needs anyway). The parser reads ahead, so the next conversation's texts may
    arrive before the one before it is batched: each conversation is begun and released by a
    key, and the file is emptied once no conversation still live has texts in it.
    """

    def __init__(self, budget_chars: int = 4 * 1024 * 1024) -> None:
        self.budget_chars = budget_chars
        self._held = 0  # characters of the newest conversation held in memory
        self._file: IO[bytes] | None = None
        self._size = 0  # bytes in the file
        # conversations begun and not yet released, with the file's size when each began
        self._live: dict[int, int] = {}

    def begin(self, key: int) -> None:
        """A conversation's texts start arriving; ``key`` names it until :meth:`release`."""
        self._live[key] = self._size
        self._held = 0

    def keep(self, text: str) -> bytes | SpilledText:
        """``text`` in UTF-8 while within budget, else a reference to it in the spill file."""
        if self._held + len(text) <= self.budget_chars:
            self._held += len(text)
            return text.encode()
        if self._file is None:
            # lives across calls, closed by close()
            self._file = tempfile.TemporaryFile(prefix="soulprint-spill-")  # noqa: SIM115
        data = text.encode()
        offset = self._file.seek(self._size)
        self._file.write(data)
        self._size += len(data)
        return SpilledText(offset, len(data), len(text))

    def utf8(self, value: str | bytes | SpilledText) -> str | bytes:
        """The text behind ``value``, as it was given or in UTF-8 (read back from the file)."""
        if type(value) is not SpilledText:
            return value  # type: ignore[return-value]
        assert self._file is not None
        self._file.seek(value.offset)
        return self._file.read(value.nbytes)

    def text(self, value: str | bytes | SpilledText) -> str:
        """The text behind ``value``, as a string."""
        resolved = self.utf8(value)
        return resolved if type(resolved) is str else resolved.decode()  # type: ignore[union-attr]

    def release(self, key: int) -> None:
        """The conversation ``key`` is batched: its texts are no longer needed.

        The file is emptied as soon as it holds only released conversations' texts, which is
        the case unless a conversation still live has spilled (then at its own release).
        """
        self._live.pop(key, None)
        if self._file is not None and all(start == self._size for start in self._live.values()):
            self._file.seek(0)
            self._file.truncate()
            self._size = 0
            self._live = dict.fromkeys(self._live, 0)

    @property
    def spilled_bytes(self) -> int:
        """Bytes waiting in the spill file."""
        return self._size

    def close(self) -> None:
        """Delete the spill file."""
        if self._file is not None:
            self._file.close()
            self._file = None
