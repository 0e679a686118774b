"""Text a remote party wrote (a webhook receiver's answer, an SMS provider's error or
message id, Resend's error body), made storable before it reaches PostgreSQL, for
every sender that records what it was answered.

PostgreSQL text cannot hold U+0000, and a remote party may answer it (a binary body,
a JSON `"\\u0000"`). Unstorable, the outcome of a send could not be recorded: the lease
would expire and the send be made again, lease after lease, for ever. So NUL becomes
U+FFFD, as it does in inbound SMS.
"""

from __future__ import annotations


def storable(text: str) -> str:
    """`text` with every U+0000 replaced by U+FFFD."""
    return text.replace("\x00", "\ufffd")
