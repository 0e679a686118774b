"""Published artefacts of the contract, generated from the models: one JSON Schema per
event type (`libs/contracts/schemas/<event type>.json`) and an AsyncAPI 3.0 document
(`docs/asyncapi.json`) describing every topic, its key, cleanup policy and messages.

The files are committed so that consumers outside Python can read the contract, and
a test fails when they drift from the models (`python -m tollgate.contracts export`
regenerates them). Rendering is deterministic: sorted keys, two-space indent, trailing
newline. This module never touches the network.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from tollgate.contracts.envelope import CONTENT_TYPE, envelope_model
from tollgate.contracts.topics import ALL_TOPICS, EVENT_TYPES, Topic

SCHEMA_DIR = Path("libs/contracts/schemas")
"""Where the per-event JSON Schemas live, relative to the repository root."""
ASYNCAPI_PATH = Path("docs/asyncapi.json")
"""Where the AsyncAPI document lives, relative to the repository root."""

_JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_KAFKA_BINDING_VERSION = "0.5.0"
_CONTRACT_VERSION = "1.0.0"


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def event_schema(event_type: str) -> dict[str, Any]:
    """The JSON Schema of the full CloudEvent (envelope and data) of one event type."""
    schema = envelope_model(EVENT_TYPES[event_type]).model_json_schema()
    return {"$schema": _JSON_SCHEMA_DIALECT, **schema}


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if text else ""


def _docstring(text: str | None) -> str:
    """A docstring as paragraphs, each unwrapped onto one line."""
    paragraphs = (text or "").strip().split("\n\n")
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs)


def _channel(topic: Topic) -> dict[str, Any]:
    topic_config: dict[str, Any] = {"cleanup.policy": [topic.cleanup]}
    if topic.retention_ms is not None:
        topic_config["retention.ms"] = topic.retention_ms
    description = topic.description
    if topic.cleanup == "compact":
        description += " Compacted: the latest value per key is the state; null value = deleted."
    return {
        "address": topic.name,
        "title": topic.name,
        "description": f"{description} Kafka key: {topic.key}.",
        "messages": {
            model.event_type: {"$ref": f"#/components/messages/{model.event_type}"}
            for model in topic.event_types
        },
        "bindings": {
            "kafka": {
                "topic": topic.name,
                "partitions": topic.partitions,
                "topicConfiguration": topic_config,
                "bindingVersion": _KAFKA_BINDING_VERSION,
            }
        },
    }


def _operation(topic: Topic) -> dict[str, Any]:
    return {
        "action": "send",
        "channel": {"$ref": f"#/channels/{topic.name}"},
        "summary": f"Publish to {topic.name}.",
        "messages": [
            {"$ref": f"#/channels/{topic.name}/messages/{model.event_type}"}
            for model in topic.event_types
        ],
    }


_HEADERS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "content-type": {"type": "string", "const": CONTENT_TYPE},
        "traceparent": {
            "type": "string",
            "description": "W3C trace context of the operation that produced the event.",
        },
    },
}


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document for every topic and event type of the contract."""
    envelopes = [envelope_model(model) for model in EVENT_TYPES.values()]
    refs, definitions = models_json_schema(
        [(envelope, "validation") for envelope in envelopes],
        ref_template="#/components/schemas/{model}",
    )
    messages: dict[str, Any] = {}
    for topic in ALL_TOPICS:
        for model in topic.event_types:
            envelope = envelope_model(model)
            messages[model.event_type] = {
                "name": model.event_type,
                "title": model.__name__,
                "summary": _first_line(model.__doc__),
                "description": _docstring(model.__doc__),
                "contentType": CONTENT_TYPE,
                "headers": _HEADERS_SCHEMA,
                "payload": refs[(envelope, "validation")],
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "description": topic.key},
                        "bindingVersion": _KAFKA_BINDING_VERSION,
                    }
                },
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Tollgate events",
            "version": _CONTRACT_VERSION,
            "description": (
                "Kafka topics and CloudEvents 1.0 (structured JSON mode) published by "
                "Tollgate. Types end in .v1: optional fields may be added to a v1 type; "
                "anything breaking becomes a new .v2 type. Generated from "
                "tollgate.contracts; do not edit by hand."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": {topic.name: _channel(topic) for topic in ALL_TOPICS},
        "operations": {f"publish.{topic.name}": _operation(topic) for topic in ALL_TOPICS},
        "components": {"messages": messages, "schemas": definitions.get("$defs", {})},
    }


def render() -> dict[Path, str]:
    """Every generated file, by path relative to the repository root."""
    files = {
        SCHEMA_DIR / f"{event_type}.json": _dump(event_schema(event_type))
        for event_type in sorted(EVENT_TYPES)
    }
    files[ASYNCAPI_PATH] = _dump(asyncapi_document())
    return files


def export(root: Path) -> list[Path]:
    """Write every generated file under `root` and delete stale schema files; return the
    paths written."""
    files = render()
    schema_dir = root / SCHEMA_DIR
    schema_dir.mkdir(parents=True, exist_ok=True)
    for stale in schema_dir.glob("*.json"):
        if stale.relative_to(root) not in files:
            stale.unlink()
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    return sorted(files)


def drift(root: Path, *, context_lines: int = 20) -> list[str]:
    """Human-readable differences between the files under `root` and the models;
    empty when they agree."""
    report: list[str] = []
    files = render()
    schema_dir = root / SCHEMA_DIR
    existing = set(schema_dir.glob("*.json")) if schema_dir.is_dir() else set()
    for stale in sorted(existing):
        if stale.relative_to(root) not in files:
            report.append(f"stale: {stale.relative_to(root)} (no such event type)")
    for path, expected in sorted(files.items()):
        target = root / path
        if not target.is_file():
            report.append(f"missing: {path}")
            continue
        actual = target.read_text(encoding="utf-8")
        if actual != expected:
            diff = list(
                difflib.unified_diff(
                    actual.splitlines(),
                    expected.splitlines(),
                    f"{path} (committed)",
                    f"{path} (models)",
                    lineterm="",
                )
            )
            report.append(f"changed: {path}")
            report.extend(f"    {line}" for line in diff[:context_lines])
            if len(diff) > context_lines:
                report.append(f"    ... {len(diff) - context_lines} more diff lines")
    return report
