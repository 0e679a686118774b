"""Regexes of SMS keyword rules, run by RE2 (google-re2) instead of Python's `re`.

An admin's pattern is searched in every unrouted message body, off the request path
but in the one router loop. With a backtracking engine a pattern such as `(a+)+$`
takes exponential time on `"a" * 40 + "!"` and would stall all SMS routing; RE2 runs
in time linear in the body whatever the pattern, so no timeout is needed. What RE2
cannot do in linear time (backreferences, lookahead/lookbehind) it refuses to
compile: such a rule is a 422 at creation. Classes such as `\\d`, `\\w` and `\\b` are
ASCII in RE2; `(?i)` makes a pattern case-insensitive.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import re2

log = logging.getLogger(__name__)

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported to the caller, not to stderr


class InvalidPattern(ValueError):
    """A pattern RE2 cannot compile; the message says why."""


def _compile(pattern: str) -> Any:
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise InvalidPattern(str(reason)) from exc


def check(pattern: str) -> None:
    """Raise InvalidPattern unless RE2 compiles `pattern`."""
    _compile(pattern)


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any | None:
    try:
        return _compile(pattern)
    except InvalidPattern as exc:
        # Only a rule stored before patterns were checked with RE2 gets here.
        log.warning("keyword rule regex not supported; it never matches", extra={"error": str(exc)})
        return None


def searches(pattern: str, text: str) -> bool:
    """Whether `pattern` matches anywhere in `text` (never, if it cannot compile)."""
    compiled = _compiled(pattern)
    return compiled is not None and compiled.search(text) is not None
