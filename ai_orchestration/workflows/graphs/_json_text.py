"""The readable text of a JSON object as a model streams it: its string values, one per line.

A step that asks for a structured answer (a JSON object under a schema) still streams its
progress as ``token_delta`` events; sending the raw JSON would show a reader braces, keys and
escapes. :class:`JsonTextStream` is fed the raw pieces as they arrive and returns the new text of
the object's string values (escapes decoded), with a line break between two values. Keys, numbers,
literals and punctuation are dropped. It never fails on malformed input: what it cannot read is
skipped, so a broken answer only shows less.
"""

from __future__ import annotations

from typing import Final

__all__ = ["JsonTextStream"]

_ESCAPES: Final[dict[str, str]] = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "",
    "f": "",
    "n": "\n",
    "r": "",
    "t": " ",
}


class JsonTextStream:
    """Incremental extractor of the string values of a streamed JSON object."""

    def __init__(self) -> None:
        self._containers: list[str] = []  # "{" or "[" for each open container
        self._in_string = False
        self._is_value = False
        self._after_colon = False
        self._escape = ""  # "\\" after a backslash, "\\uXX.." while reading a \u escape
        self._high = ""  # the first half of a surrogate pair, until its second half
        self._values = 0

    def feed(self, piece: str) -> str:
        """The value text ``piece`` adds (possibly empty)."""
        out: list[str] = []
        for char in piece:
            if self._in_string:
                self._string_char(char, out)
            elif char == '"':
                self._in_string = True
                # In an object only a string after ':' is a value (the others are keys); in an
                # array every string is one.
                in_array = bool(self._containers) and self._containers[-1] == "["
                self._is_value = self._after_colon or in_array
                if self._is_value and self._values:
                    out.append("\n")
            elif char == ":":
                self._after_colon = True
            elif char in "{[":
                self._containers.append(char)
                self._after_colon = False
            elif char in "}]":
                if self._containers:
                    self._containers.pop()
                self._after_colon = False
            elif char == ",":
                self._after_colon = False
        return "".join(out)

    def _string_char(self, char: str, out: list[str]) -> None:
        if self._escape:
            self._escape += char
            if self._escape.startswith("\\u") and len(self._escape) < 6:
                return
            text = self._high + _decoded(self._escape)
            self._escape = self._high = ""
            if "\ud800" <= text[-1:] <= "\udbff":  # a character beyond the BMP: wait for its pair
                self._high = text
                return
            if self._is_value:
                # A lone half (a broken answer) cannot be sent as UTF-8: it is dropped.
                out.append(text.encode("utf-16", "surrogatepass").decode("utf-16", "ignore"))
            return
        if char == "\\":
            self._escape = char
            return
        self._high = ""  # a half pair not followed by its other half is dropped
        if char == '"':
            self._in_string = False
            self._after_colon = False
            if self._is_value:
                self._values += 1
        elif self._is_value:
            out.append(char)


def _decoded(escape: str) -> str:
    if escape.startswith("\\u"):
        try:
            return chr(int(escape[2:], 16))
        except ValueError:
            return ""
    return _ESCAPES.get(escape[1:], "")
