"""Untrusted strings made safe to log: escaped onto one line and bounded.

Input ids, keys, headers, topic names read from records, manifest fields and file
names found in the registry come from whoever wrote them. Logged raw, a newline in
one forges a log line, an ANSI escape rewrites the terminal, and a megabyte id makes
a megabyte log line. Every log call (and every error message) that carries such a
value passes it through :func:`escaped`.

>>> print(escaped("evt-1"), escaped("demo/3/weights.safetensors"))
evt-1 demo/3/weights.safetensors
>>> print(escaped("x\\n2026-01-01 CRITICAL forged"))
x\\n2026-01-01 CRITICAL forged
>>> print(escaped("\\ud800\\x1b[2J back\\\\slash"))
\\ud800\\x1b[2J back\\\\slash
>>> print(escaped("a" * 100, limit=8))
aaaaaaaa... (100 characters)
>>> print(escaped(b"\\xff\\n"))
b'\\xff\\n'
>>> print(escaped(KeyError("k\\n")))
KeyError: 'k\\\\n'
"""

from __future__ import annotations

#: Characters (or bytes) of a value kept in a log line; the rest is counted, not shown.
DEFAULT_LIMIT = 200


def _escape_char(c: str) -> str:
    return "\\\\" if c == "\\" else repr(c)[1:-1]


def _one_line(text: str) -> str:
    """``text`` with every character ``str.isprintable`` rejects (and ``\\``) escaped."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(c if c.isprintable() and c != "\\" else _escape_char(c) for c in text)


class Escaped:
    """A value formatted only when a log record is emitted (``%s`` and ``%r`` alike).

    Characters :meth:`str.isprintable` rejects are written as Python escapes
    (``\\n``, ``\\x1b``, ``\\u2028``, ``\\u202e``, a lone ``\\ud800``), and a backslash as
    ``\\\\``, so the output is one line and every escape in it is unambiguous. Bytes
    show as their ``repr`` (``b'...'``).
    """

    __slots__ = ("limit", "value")

    def __init__(self, value: object, limit: int) -> None:
        self.value = value
        self.limit = limit

    def __str__(self) -> str:
        value = self.value
        if isinstance(value, bytes | bytearray):
            cut = bytes(value[: self.limit])
            return repr(cut) + self._more(len(value), "bytes")
        if isinstance(value, BaseException):
            value = f"{type(value).__name__}: {value}"
        elif not isinstance(value, str):
            value = repr(value)  # its own text may embed untrusted data: escaped too
        if not value:
            return "''"  # visible, unlike nothing
        return _one_line(value[: self.limit]) + self._more(len(value), "characters")

    def _more(self, size: int, unit: str) -> str:
        return "" if size <= self.limit else f"... ({size} {unit})"

    __repr__ = __str__


def escaped(value: object, limit: int = DEFAULT_LIMIT) -> Escaped:
    """``value`` for a log line or message: escaped onto one line, cut after ``limit``.

    Parameters
    ----------
    value : str, bytes or any object
        An exception shows ``Type: message``, other objects their ``repr``; either
        way the text is escaped, since it may embed untrusted data.
    limit : int
        Characters (bytes for bytes) shown; the full length follows when cut.

    Returns
    -------
    Escaped
        Formatted lazily: a log call below the active level costs no copy.
    """
    return Escaped(value, limit)
