"""The sandbox cells' API for `run.py --sandbox`: an OpenAPI document (an order schema,
a list and an item with an example) and a valid 1 KB order body. Data only."""

from __future__ import annotations

import json

ORDER_SCHEMA = {
    "type": "object",
    "required": ["customer", "currency", "lines"],
    "additionalProperties": False,
    "properties": {
        "customer": {"type": "string", "format": "email"},
        "currency": {"type": "string", "enum": ["EUR", "USD", "CNY"]},
        "note": {"type": "string", "maxLength": 2000},
        "lines": {
            "type": "array",
            "maxItems": 50,
            "items": {
                "type": "object",
                "required": ["sku", "quantity"],
                "additionalProperties": False,
                "properties": {
                    "sku": {"type": "string", "pattern": "^[A-Z0-9-]{4,20}$"},
                    "quantity": {"type": "integer", "minimum": 1, "maximum": 1000},
                    "unit_price": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
}
DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "bench", "version": "1"},
    "paths": {
        "/orders": {
            "post": {
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ORDER_SCHEMA}},
                },
                "responses": {"200": {"description": "ok"}},
            },
            "get": {
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 50}}
                ],
                "responses": {
                    "200": {
                        "description": "orders",
                        "content": {
                            "application/json": {
                                "schema": {"type": "array", "maxItems": 5, "items": ORDER_SCHEMA}
                            }
                        },
                    }
                },
            },
        },
        "/orders/{id}": {
            "get": {
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
                ],
                "responses": {
                    "200": {
                        "description": "an order",
                        "content": {
                            "application/json": {
                                "schema": ORDER_SCHEMA,
                                "example": {
                                    "customer": "a@example.com",
                                    "currency": "EUR",
                                    "lines": [{"sku": "AB-12", "quantity": 2}],
                                },
                            }
                        },
                    }
                },
            }
        },
    },
}


def order_body(size: int = 1024) -> bytes:
    """A valid order of exactly `size` bytes (the note pads it)."""
    order = {
        "customer": "buyer@example.com",
        "currency": "EUR",
        "lines": [{"sku": f"SKU-{n:04d}", "quantity": n + 1, "unit_price": 250} for n in range(8)],
        "note": "",
    }
    empty = len(json.dumps(order, separators=(",", ":")))
    order["note"] = "x" * (size - empty)
    body = json.dumps(order, separators=(",", ":")).encode()
    assert len(body) == size
    return body
