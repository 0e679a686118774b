"""The built-in mock: answers an API's operations from its OpenAPI document, in memory.

Response choice follows Prism (stoplightio/prism, "Mock Responses"); the client steers
it with `Prefer` (RFC 7240), several preferences in one header or several headers:

- no preference: the lowest documented 2xx (else the first documented code), the
  first JSON media type, and its first example (`example`, then the first of
  `examples`), else a value built statically from the schema (`default`, first `enum`,
  then a placeholder of the right type and bounds);
- `code=404`: the answer documented for that status (else `default` with that status);
  none documented → 404 `mock-no-response`;
- `example=cat`: the named example of the chosen answer; unknown → 404
  `mock-no-example`;
- `dynamic=true`: a value generated from the schema, deterministic per request: the
  seed is the CRC32 of method, path, query and body (or `Prefer: seed=<n>`).

The optional stateful mode (`MockState`) keeps resources per (API, key): a collection
is a path without a trailing `{param}` (`/pets`), its items are that path plus one
(`/pets/{petId}`). POST creates (an `id` is assigned unless the body carries one),
GET reads or lists (`limit`/`offset`, `Link: <…>; rel="next"`), PUT replaces, PATCH
merges, DELETE removes. Memory is bounded: resources are kept as their JSON, at most
64 KiB each, `max_keys` (API, key) spaces, `max_items` resources per space and
`max_bytes` in all, least recently used evicted first.

No I/O: everything here runs on the event loop from memory.
"""

from __future__ import annotations

import random
import uuid
import zlib
from collections import OrderedDict
from typing import Any

import orjson

from tollgate.gateway.registry.openapi import Contract, Operation, Response, resolve_ref

_MAX_DEPTH = 8
_JSON = "application/json"


class MockAnswer:
    """What the mock answers: status, headers, body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
        self.status = status
        self.body = body
        self.headers = headers


class MockRefused(Exception):
    """The mock cannot answer as asked (problem status, slug, detail)."""

    def __init__(self, status: int, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail


def preferences(values: list[str]) -> dict[str, str]:
    """`Prefer` header values → {name: value} (lowercase names, quotes removed)."""
    found: dict[str, str] = {}
    for header in values:
        for part in header.split(","):
            for item in part.split(";"):
                name, _, value = item.strip().partition("=")
                if name:
                    found.setdefault(name.strip().lower(), value.strip().strip('"'))
    return found


# ----------------------------------------------------------------------- values


class _Builder:
    """Builds a value for a schema: static (first choices) or dynamic (seeded)."""

    def __init__(self, document: Any, rng: random.Random | None) -> None:
        self.document = document
        self.rng = rng

    def resolve(self, schema: Any) -> dict[str, Any]:
        for _ in range(32):
            if isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
                schema = resolve_ref(self.document, schema["$ref"])
            else:
                break
        return schema if isinstance(schema, dict) else {}

    def value(self, schema: Any, depth: int = 0) -> Any:
        if depth > 2 * _MAX_DEPTH:  # a required property that contains itself
            return None
        schema = self.resolve(schema)
        rng = self.rng
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return rng.choice(schema["enum"]) if rng else schema["enum"][0]
        if rng is None:
            if "example" in schema:
                return schema["example"]
            if isinstance(schema.get("examples"), list) and schema["examples"]:
                return schema["examples"][0]
            if "default" in schema:
                return schema["default"]
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                part = self.resolve(part)
                for name, item in part.items():
                    if name == "properties":
                        merged.setdefault("properties", {}).update(item)
                    elif name == "required":
                        merged.setdefault("required", []).extend(item)
                    else:
                        merged.setdefault(name, item)
            return self.value(merged, depth + 1)
        for choice in ("oneOf", "anyOf"):
            options = schema.get(choice)
            if isinstance(options, list) and options:
                return self.value(rng.choice(options) if rng else options[0], depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"] or ["null"]
            kind = kinds[0]
        if kind is None:
            kind = "object" if "properties" in schema else ("array" if "items" in schema else None)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return rng.random() < 0.5 if rng else True
        if kind == "string":
            return self._string(schema)
        if kind == "null":
            return None
        return {} if rng is None else None

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties: dict[str, Any] = (
            schema["properties"] if isinstance(schema.get("properties"), dict) else {}
        )
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        if depth >= _MAX_DEPTH:
            names = [n for n in properties if n in required]
        else:
            names = [
                n
                for n in properties
                if n in required or self.rng is None or self.rng.random() < 0.7
            ]
        for name in names:
            item = self.resolve(properties[name])
            if item.get("writeOnly"):
                continue
            out[name] = self.value(item, depth + 1)
        maximum = schema.get("maxProperties")
        if isinstance(maximum, int) and len(out) > maximum:
            out = {n: v for n, v in out.items() if n in required} or dict(
                list(out.items())[:maximum]
            )
        return out

    def _array(self, schema: dict[str, Any], depth: int) -> list[Any]:
        low = schema.get("minItems", 0) if isinstance(schema.get("minItems"), int) else 0
        high = schema.get("maxItems") if isinstance(schema.get("maxItems"), int) else None
        if depth >= _MAX_DEPTH:
            count = low
        elif self.rng is None:
            count = max(low, 1)
        else:
            count = self.rng.randint(max(low, 1), max(low, 3))
        if high is not None:
            count = min(count, high)
        items = [self.value(schema.get("items", {}), depth + 1) for _ in range(count)]
        if schema.get("uniqueItems") and items:
            unique: list[Any] = []
            for item in items:
                if item not in unique:
                    unique.append(item)
            items = unique if len(unique) >= low else items
        return items

    def _bounds(self, schema: dict[str, Any], step: float) -> tuple[float, float]:
        low = schema.get("minimum")
        high = schema.get("maximum")
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if isinstance(ex_low, int | float) and not isinstance(ex_low, bool):
            low = ex_low + step
        elif ex_low is True and isinstance(low, int | float):
            low = low + step
        if isinstance(ex_high, int | float) and not isinstance(ex_high, bool):
            high = ex_high - step
        elif ex_high is True and isinstance(high, int | float):
            high = high - step
        lo = float(low) if isinstance(low, int | float) else None
        hi = float(high) if isinstance(high, int | float) else None
        if lo is None:
            lo = min(0.0, hi) if hi is not None else 0.0
        if hi is None:
            hi = lo + 1000
        return lo, max(lo, hi)

    def _integer(self, schema: dict[str, Any]) -> int:
        lo, hi = self._bounds(schema, 1)
        low, high = int(-(-lo // 1)), int(hi // 1)
        value = self.rng.randint(low, max(low, high)) if self.rng else low
        multiple = schema.get("multipleOf")
        if isinstance(multiple, int) and multiple > 0:
            value = -(-value // multiple) * multiple
            if value > high:
                value -= multiple
        return value

    def _number(self, schema: dict[str, Any]) -> float | int:
        lo, hi = self._bounds(schema, 0.001)
        if isinstance(schema.get("multipleOf"), int | float):
            multiple: float = schema["multipleOf"]
            return self._integer({**schema, "multipleOf": None}) * multiple
        return round(self.rng.uniform(lo, hi), 3) if self.rng else lo

    def _string(self, schema: dict[str, Any]) -> str:
        rng = self.rng
        fmt = schema.get("format")
        if fmt == "date-time":
            return f"2024-05-{rng.randint(1, 28) if rng else 1:02d}T12:00:00Z"
        if fmt == "date":
            return f"2024-05-{rng.randint(1, 28) if rng else 1:02d}"
        if fmt == "time":
            return "12:00:00Z"
        if fmt == "email":
            return f"user{rng.randint(1, 9999) if rng else 1}@example.com"
        if fmt == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128) if rng else 1, version=4))
        if fmt in ("uri", "url"):
            return f"https://example.com/{rng.randint(1, 9999) if rng else 1}"
        if fmt in ("hostname",):
            return "example.com"
        if fmt == "ipv4":
            return f"192.0.2.{rng.randint(1, 254) if rng else 1}"
        if fmt == "ipv6":
            return "2001:db8::1"
        low = schema.get("minLength", 0) if isinstance(schema.get("minLength"), int) else 0
        high = schema.get("maxLength") if isinstance(schema.get("maxLength"), int) else None
        if rng is None:
            text = "string"
        else:
            length = rng.randint(max(low, 4), max(low, 12))
            text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(length))
        if len(text) < low:
            text = text + "x" * (low - len(text))
        if high is not None:
            text = text[:high]
        return text


# ----------------------------------------------------------------------- stateless


def _decimal(text: str | None, digits: int) -> int | None:
    """`text` as a number when it is at most `digits` ASCII digits, else None (`isdigit`
    alone takes "²", which `int` refuses)."""
    if text and len(text) <= digits and text.isascii() and text.isdigit():
        return int(text)
    return None


def _documented_code(operation: Operation, wanted: str | None) -> tuple[int, Response]:
    if wanted is not None:
        code = _decimal(wanted, 3)
        if code is None or not 100 <= code <= 599:
            raise MockRefused(
                400, "mock-bad-preference", f"Prefer code={wanted[:20]!r} is no status."
            )
        response = operation.responses.get(wanted) or operation.responses.get("DEFAULT")
        if response is None:
            raise MockRefused(
                404,
                "mock-no-response",
                f"The document defines no response {wanted} for this operation.",
            )
        return code, response
    codes = sorted(c for c in operation.responses if c.isdigit())
    success = [c for c in codes if c.startswith("2")]
    if success:
        return int(success[0]), operation.responses[success[0]]
    if codes:
        return int(codes[0]), operation.responses[codes[0]]
    if "DEFAULT" in operation.responses:
        return 200, operation.responses["DEFAULT"]
    raise MockRefused(404, "mock-no-response", "The document defines no response here.")


def _media(response: Response, accept: str | None) -> tuple[str, dict[str, Any]] | None:
    if not response.content:
        return None
    if accept:
        for part in accept.split(","):
            wanted = part.split(";", 1)[0].strip().lower()
            for media, spec in response.content.items():
                if wanted in (media.lower(), "*/*") or (
                    wanted.endswith("/*") and media.lower().startswith(wanted[:-1])
                ):
                    return media, spec
    for media, spec in response.content.items():
        if media.lower().split(";")[0] == _JSON or media.lower().endswith("+json"):
            return media, spec
    return next(iter(response.content.items()))


def seed_of(method: str, path: str, query: str, body: bytes) -> int:
    """The deterministic seed of one request's dynamic data."""
    return zlib.crc32(body, zlib.crc32(f"{method} {path}?{query}".encode()))


def mock_answer(
    contract: Contract,
    operation: Operation,
    prefer: dict[str, str],
    accept: str | None,
    seed: int,
) -> MockAnswer:
    """The stateless mock answer for `operation` as `prefer` asks (see the module)."""
    status, response = _documented_code(operation, prefer.get("code"))
    chosen = _media(response, accept)
    if chosen is None or status in (204, 304):
        if "example" in prefer:
            raise MockRefused(404, "mock-no-example", "This response has no examples.")
        return MockAnswer(status, b"", [])
    media, spec = chosen
    builder = _Builder(contract.document, None)
    examples: dict[str, Any] = spec["examples"] if isinstance(spec.get("examples"), dict) else {}
    wanted = prefer.get("example")
    if wanted is not None:
        example = examples.get(wanted)
        if not isinstance(example, dict):
            raise MockRefused(
                404, "mock-no-example", f"No example named {wanted!r} for this response."
            )
        value = builder.resolve(example).get("value")
    elif prefer.get("dynamic", "").lower() == "true":
        override = _decimal(prefer.get("seed"), 100)
        rng = random.Random(seed if override is None else override)
        value = _Builder(contract.document, rng).value(spec.get("schema", {}))
    elif "example" in spec:
        value = spec["example"]
    elif examples:
        value = builder.resolve(next(iter(examples.values()))).get("value")
    else:
        value = builder.value(spec.get("schema", {}))
    if isinstance(value, str) and not media.lower().split(";")[0].endswith("json"):
        body = value.encode()
    else:
        body = orjson.dumps(value)
    return MockAnswer(status, body, [("Content-Type", media)])


# ----------------------------------------------------------------------- stateful


MAX_RESOURCE_BYTES = 64 * 1024  # one stored resource, as JSON


class _Space:
    """The resources one key created in one API: collection path → {id: its JSON},
    written order, and the bytes held."""

    __slots__ = ("bytes", "collections", "order")

    def __init__(self) -> None:
        self.collections: dict[str, dict[str, bytes]] = {}
        self.order: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.bytes = 0


_ENTRY_BYTES = 256
"""What one kept resource costs beyond its text: its dict and order entries, its key."""


def _cost(collection: str, item_id: str, data: bytes) -> int:
    """The bytes a kept resource is counted for: its JSON, its collection path and id
    (each entry holds its own copy of the path a request sent), and the entries."""
    return len(data) + len(collection) + len(item_id) + _ENTRY_BYTES


def _object_of(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        raise MockRefused(400, "mock-bad-body", "The body is not valid JSON.") from None
    if not isinstance(value, dict):
        raise MockRefused(400, "mock-bad-body", "The stateful mock stores JSON objects.")
    return value


def _stored(value: dict[str, Any]) -> bytes:
    # A copy: what orjson returns keeps its whole output buffer (at least 4 KiB, and
    # about 70 times the text for a 60 KB one), which a kept resource must not.
    data = bytes(memoryview(orjson.dumps(value)))
    if len(data) > MAX_RESOURCE_BYTES:
        raise MockRefused(
            413,
            "mock-too-large",
            f"The stateful mock stores resources of at most {MAX_RESOURCE_BYTES} bytes of JSON.",
        )
    return data


class MockState:
    """Resources of the stateful mock, per (API, key), kept as their JSON (what a
    resource costs is its size, not the size of its parsed objects), bounded by
    spaces, resources per space and bytes in all; the least recently used space and,
    in a space, the oldest written resource go first."""

    def __init__(self, max_keys: int, max_items: int, max_bytes: int) -> None:
        self.max_keys = max_keys
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._spaces: OrderedDict[tuple[str, str], _Space] = OrderedDict()
        self.held_bytes = 0
        self.evicted = 0

    def _space(self, api_id: str, key_id: str) -> _Space:
        slot = (api_id, key_id)
        space = self._spaces.get(slot)
        if space is None:
            space = self._spaces[slot] = _Space()
            while len(self._spaces) > self.max_keys:
                _, dropped = self._spaces.popitem(last=False)
                self.held_bytes -= dropped.bytes
                self.evicted += 1
        else:
            self._spaces.move_to_end(slot)
        return space

    def resources(self) -> int:
        """Resources held across every space (for tests and metrics)."""
        return sum(len(space.order) for space in self._spaces.values())

    def forget_api(self, api_id: str) -> None:
        for slot in [s for s in self._spaces if s[0] == api_id]:
            self.held_bytes -= self._spaces.pop(slot).bytes

    def _put(self, space: _Space, collection: str, item_id: str, data: bytes) -> None:
        items = space.collections.setdefault(collection, {})
        before = items.get(item_id)
        grown = _cost(collection, item_id, data) - (
            0 if before is None else _cost(collection, item_id, before)
        )
        items[item_id] = data
        space.order[(collection, item_id)] = None
        space.order.move_to_end((collection, item_id))
        space.bytes += grown
        self.held_bytes += grown
        while len(space.order) > self.max_items:
            self._drop_oldest(space)
        while self.held_bytes > self.max_bytes:
            # The least recently used space gives up its oldest resource; the space
            # written just now comes last, so it keeps `data` unless it is alone.
            slot, oldest = next(iter(self._spaces.items()))
            if oldest is space and len(space.order) <= 1:
                break
            if oldest.order:
                self._drop_oldest(oldest)
            if not oldest.order and oldest is not space:
                del self._spaces[slot]

    def _drop_oldest(self, space: _Space) -> None:
        (collection, item_id), _ = space.order.popitem(last=False)
        self._remove(space, collection, item_id)
        self.evicted += 1

    def _remove(self, space: _Space, collection: str, item_id: str) -> None:
        items = space.collections.get(collection, {})
        data = items.pop(item_id, None)
        space.order.pop((collection, item_id), None)
        if data is None:
            return
        if not items:  # an emptied collection holds its path no longer
            del space.collections[collection]
        cost = _cost(collection, item_id, data)
        space.bytes -= cost
        self.held_bytes -= cost

    def answer(
        self,
        api_id: str,
        key_id: str,
        operation: Operation,
        path: str,
        path_values: dict[str, str],
        query: str,
        body: bytes,
    ) -> MockAnswer | None:
        """The stateful answer, or None when the operation is no collection/item CRUD
        (then the stateless mock answers)."""
        template = operation.template.rstrip("/")
        method = operation.method
        item_of = template.rsplit("/", 1)
        is_item = len(item_of) == 2 and item_of[1].startswith("{") and item_of[1].endswith("}")
        if is_item:
            param = item_of[1][1:-1]
            collection = path.rstrip("/").rsplit("/", 1)[0]
            item_id = path_values.get(param, "")
            return self._item(api_id, key_id, operation, collection, item_id, body)
        collection = path.rstrip("/") or "/"
        if method == "POST":
            return self._create(api_id, key_id, operation, collection, body)
        if method == "GET":
            return self._list(api_id, key_id, collection, query)
        return None

    def _create(
        self,
        api_id: str,
        key_id: str,
        operation: Operation,
        collection: str,
        body: bytes,
    ) -> MockAnswer:
        value = _object_of(body)
        space = self._space(api_id, key_id)
        items = space.collections.get(collection, {})
        if "id" not in value:
            value["id"] = self._new_id(operation, items)
        item_id = str(value["id"])
        if item_id in items:
            raise MockRefused(409, "mock-conflict", f"{collection}/{item_id} exists.")
        data = _stored(value)
        self._put(space, collection, item_id, data)
        codes = sorted(c for c in operation.responses if c.startswith("2"))
        status = int(codes[0]) if codes else 201
        return MockAnswer(
            status, data, [("Content-Type", _JSON), ("Location", f"{collection}/{item_id}")]
        )

    def _new_id(self, operation: Operation, items: dict[str, bytes]) -> Any:
        kind = operation.id_type
        numbers = [_decimal(k, 18) for k in items]
        if kind is None and None in numbers:
            kind = "string"
        if kind == "string":
            return str(uuid.uuid4())
        return max((n for n in numbers if n is not None), default=0) + 1

    def _list(self, api_id: str, key_id: str, collection: str, query: str) -> MockAnswer:
        space = self._space(api_id, key_id)
        values = list(space.collections.get(collection, {}).values())
        params = dict(part.partition("=")[::2] for part in query.split("&") if part)
        asked = _decimal(params.get("limit"), 6)
        limit = max(1, min(20 if asked is None else asked, 100))
        offset = _decimal(params.get("offset"), 9) or 0
        page = values[offset : offset + limit]
        headers = [("Content-Type", _JSON), ("X-Total-Count", str(len(values)))]
        if offset + limit < len(values):
            headers.append(("Link", f'<?limit={limit}&offset={offset + limit}>; rel="next"'))
        return MockAnswer(200, b"[" + b",".join(page) + b"]", headers)

    def _item(
        self,
        api_id: str,
        key_id: str,
        operation: Operation,
        collection: str,
        item_id: str,
        body: bytes,
    ) -> MockAnswer:
        space = self._space(api_id, key_id)
        current = space.collections.get(collection, {}).get(item_id)
        if current is None:
            raise MockRefused(404, "mock-not-found", f"No {collection}/{item_id} in the mock.")
        method = operation.method
        if method in ("GET", "HEAD"):
            return MockAnswer(200, current, [("Content-Type", _JSON)])
        if method == "DELETE":
            self._remove(space, collection, item_id)
            return MockAnswer(204, b"", [])
        if method in ("PUT", "PATCH"):
            value = _object_of(body)
            stored = orjson.loads(current)
            updated = {**stored, **value} if method == "PATCH" else value
            updated["id"] = stored.get("id", item_id)
            data = _stored(updated)
            self._put(space, collection, item_id, data)
            return MockAnswer(200, data, [("Content-Type", _JSON)])
        raise MockRefused(405, "mock-method", f"The stateful mock does not {method} items.")
