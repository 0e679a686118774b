"""The one normalisation of a request target, done before anything looks at the path.

`normalise(raw)` turns the raw origin-form path of a request (`/<slug>/<rest>`, no
query) into the API slug, the API path every decision uses (route match, scopes,
price, the event's `path`) and the percent-encoded path forwarded upstream, all
three from the same decoded segments:

- the path is split on `/`, each segment percent-decoded once (strict UTF-8: invalid
  and overlong sequences are refused), then dot segments are removed (RFC 3986
  §5.2.4) *after* decoding, so `%2e%2e`, `%2E.` and `..` are the same thing;
- the slug is the first segment and is fixed: a `..` that would climb above it (out
  of the API) is refused, and so is a dot segment as the slug;
- ambiguous forms are refused rather than guessed at, because gateway and upstream
  could read them differently: an encoded `/` (`%2F`) or any `\\` (`%5C`), NUL and
  other control characters, invalid percent-encoding, `#`, double encoding
  (`%252e`: a decoded segment that still holds `%XX`), and dot segments in disguise
  (`..;x`, `.;`, `..%20`: dots to upstreams that drop `;` parameters or spaces);
- the forwarded path is rebuilt from the decoded segments, each re-encoded so that
  it is one segment and never a dot segment to any URL parser: it stays under the
  API's upstream base path.

Most targets have no `%`, `\\`, `#`, control character or dot segment; they take a
fast path that checks this with one regex search and returns the raw path unchanged.

Pure functions, no I/O.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_to_bytes

# Characters a path segment may carry unencoded (RFC 3986 pchar minus "%").
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What sends a target down the slow path: anything to decode, refuse or resolve.
_NEEDS_CARE = re.compile(r"[%\\#\x00-\x1f\x7f]|/\.")
_PERCENT_TRIPLET = re.compile(r"%[0-9A-Fa-f]{2}")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


class AmbiguousPath(ValueError):
    """The request target cannot be read one way only; the message says why (400)."""


class Target:
    """A normalised request target."""

    __slots__ = ("forward", "path", "slug")

    def __init__(self, slug: str, path: str, forward: str) -> None:
        self.slug = slug
        self.path = path
        """The API path, decoded and without dot segments, starting with `/`."""
        self.forward = forward
        """`path` percent-encoded for the upstream URL (appended to the base)."""


def normalise(raw: str) -> Target:
    """The target of `raw` (origin-form path, query removed); raises AmbiguousPath."""
    if not raw.startswith("/"):
        raise AmbiguousPath("The request target must be an absolute path.")
    if _NEEDS_CARE.search(raw) is None:
        slug, _, rest = raw[1:].partition("/")
        if not slug:
            raise AmbiguousPath("The path names no API.")
        path = "/" + rest
        return Target(slug, path, path)
    return _normalise_slowly(raw)


def _normalise_slowly(raw: str) -> Target:
    if _CONTROL.search(raw):
        raise AmbiguousPath("The path contains control characters.")
    if "#" in raw:
        raise AmbiguousPath("The path contains '#'.")
    if "\\" in raw:
        raise AmbiguousPath("The path contains a backslash.")
    if _BAD_PERCENT.search(raw):
        raise AmbiguousPath("The path contains invalid percent-encoding.")
    raw_segments = raw[1:].split("/")
    decoded = [_decode(segment) for segment in raw_segments]
    slug = decoded[0]
    if not slug or slug in (".", "..") or _disguised_dots(slug):
        raise AmbiguousPath("The path names no API.")
    # RFC 3986 §5.2.4 over decoded segments, with the slug as a floor.
    out: list[str] = []
    trailing = False
    for segment in decoded[1:]:
        if segment == ".":
            trailing = True
        elif segment == "..":
            if not out:
                raise AmbiguousPath("The path climbs above the API with '..'.")
            out.pop()
            trailing = True
        elif _disguised_dots(segment):
            raise AmbiguousPath("The path holds a dot segment with parameters or spaces.")
        else:
            out.append(segment)
            trailing = False
    if trailing:
        out.append("")
    path = "/" + "/".join(out)
    forward = "/" + "/".join(quote(segment, safe=_SEGMENT_SAFE) for segment in out)
    return Target(slug, path, forward)


def _disguised_dots(segment: str) -> bool:
    """True for `..;x`, `.;`, `.. ` and the like: a dot segment to an upstream that drops
    a segment's `;` parameters (Tomcat, Jetty, Spring) or its surrounding spaces (IIS)
    before resolving dots, so `/api/public/..;/admin` reaches `/api/admin` there while
    the gateway judged (and priced) it as a path under `/public`."""
    if not segment.startswith((".", " ")):
        return False
    return segment.split(";", 1)[0].strip() in (".", "..") and segment not in (".", "..")


def _decode(segment: str) -> str:
    if "%" not in segment:
        text = segment
    else:
        try:
            text = unquote_to_bytes(segment).decode("utf-8")
        except UnicodeError:
            raise AmbiguousPath("The path is not valid UTF-8 once decoded.") from None
        if "/" in text:
            raise AmbiguousPath("The path contains an encoded '/'.")
        if "\\" in text:
            raise AmbiguousPath("The path contains an encoded backslash.")
        if _PERCENT_TRIPLET.search(text):
            raise AmbiguousPath("The path is percent-encoded twice.")
    if _CONTROL.search(text):
        raise AmbiguousPath("The path contains control characters.")
    return text
