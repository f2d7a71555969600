"""Text made inert before it reaches a terminal: job titles, file names, error messages and
raw rows come from whoever submitted a file, and must not drive the operator's terminal."""

from __future__ import annotations

import re

# Characters that can drive a terminal or hide what is printed: C0 controls (ESC starts the
# escape sequences), DEL, C1 controls (CSI), and Unicode's bidirectional overrides and
# zero-width characters. Tab and newline are also shown escaped in one-line output.
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
_UNSAFE_IN_LINE = re.compile(f"[{_CONTROL}\t\n]")
_UNSAFE_IN_TEXT = re.compile(f"[{_CONTROL}]")


def inert(text: str, *, multiline: bool = False) -> str:
    """`text` safe to print to a terminal: every control character (and, unless `multiline`,
    tab and newline) is shown as its escape (`\\x1b`, `\\u202e`) instead of acting."""
    pattern = _UNSAFE_IN_TEXT if multiline else _UNSAFE_IN_LINE
    return pattern.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
