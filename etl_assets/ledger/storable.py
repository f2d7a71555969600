"""Text the ledger stores is NUL-free: PostgreSQL's text and JSONB cannot hold a NUL character.

A NUL that reached a write (a file's header quoted in an error message or a traceback, a raw
row) would make the write itself fail, and the job could not record why it failed. Every NUL
is stored as the four characters `\\x00` instead, so what was there stays visible.
"""

from __future__ import annotations

from typing import Any

NUL = "\x00"
SHOWN_NUL = "\\x00"


def storable_text(text: str) -> str:
    """`text` with every NUL written as `\\x00`."""
    return text.replace(NUL, SHOWN_NUL) if NUL in text else text


def storable(value: Any) -> Any:
    """`value` with every string in it (keys too, in dicts and lists) made NUL-free."""
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(storable(v) for v in value)
    return value
