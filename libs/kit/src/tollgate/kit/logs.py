"""Structured JSON logging with request ids and secret redaction.

Every log line is one JSON object (`ts`, `level`, `logger`, `msg`, `service`, and
`request_id`/`trace_id` when known). A redaction filter masks anything shaped like a
raw API key, webhook secret or bearer token, as a last line of defence: code must
still never log secrets on purpose.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import orjson

request_id_var: ContextVar[str | None] = ContextVar("tollgate_request_id", default=None)

_SECRET_PATTERNS = re.compile(
    r"(tg_(?:live|test)_)[A-Za-z0-9]{6,}"
    r"|(whsec_)[A-Za-z0-9+/=]{6,}"
    r"|((?i:bearer)\s+)[A-Za-z0-9._~+/=-]{8,}"
)


def redact(text: str) -> str:
    """Mask raw keys, webhook secrets and bearer tokens in `text`."""
    return _SECRET_PATTERNS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + "***", text)


_RESERVED = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line, redacted."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "service": self.service,
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return redact(orjson.dumps(entry, default=str).decode())


class PlainFormatter(logging.Formatter):
    """Human-readable lines for local runs, redacted."""

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(service: str, level: str = "INFO", *, json: bool = True) -> None:
    """Route all logging (ours, uvicorn's, aiokafka's) to stderr in one format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service) if json else PlainFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Per-request access lines are not logged: the gateway's request events are the
    # access log (in Kafka, queryable through usage), and a log line per request costs
    # more than the rest of the hot path's bookkeeping.
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    logging.getLogger("aiohttp.access").setLevel("WARNING")
    logging.getLogger("aiokafka").setLevel("WARNING")
