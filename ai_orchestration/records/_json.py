"""JSON values, as records hold them."""

from __future__ import annotations

from typing import Any, TypeAlias

__all__ = ["JsonDoc", "JsonValue"]

JsonValue: TypeAlias = str | int | float | bool | list["JsonValue"] | dict[str, "JsonValue"] | None
"""Any value that survives a JSON round trip."""

JsonDoc = dict[str, Any]
"""A JSON object (proto3 JSON form, proto field names)."""
