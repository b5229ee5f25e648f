"""Tool arguments to ``crm.ai.v1`` request messages, checked by the protos' own rules.

The tools take JSON; the rules a gRPC caller meets (``buf.validate``) are the ones an MCP
caller meets too, so a tool builds the RPC's request message and validates it here, and its
answer is the RPC's response in the proto JSON mapping.
"""

from __future__ import annotations

from typing import Any, TypeVar

import protovalidate
from google.protobuf import json_format
from google.protobuf.message import Message

from ai_orchestration.errors import FieldViolation, InvalidArgumentError

_validator = protovalidate.Validator()
M = TypeVar("M", bound=Message)


def parsed(document: dict[str, Any], message: M, *, field: str) -> M:
    """``document`` merged into ``message``; a document that does not fit is
    ``INVALID_ARGUMENT`` naming ``field``."""
    try:
        json_format.ParseDict(document, message)
    except json_format.ParseError as error:
        raise InvalidArgumentError(
            f"invalid {field}: {error}", [FieldViolation(field, str(error), "PARSE")]
        ) from error
    return message


def validated(message: M) -> M:
    """``message`` if it keeps every ``buf.validate`` rule, else ``INVALID_ARGUMENT`` naming
    each broken field."""
    violations = _validator.collect_violations(message)
    if not violations:
        return message
    fields = [
        FieldViolation(
            _field_path(violation),
            violation.proto.message or violation.proto.rule_id,
            violation.proto.rule_id,
        )
        for violation in violations
    ]
    summary = "; ".join(f"{item.field}: {item.description}" for item in fields[:5])
    raise InvalidArgumentError(f"invalid arguments: {summary}", fields)


def as_json(message: Message) -> dict[str, Any]:
    """The message in the proto JSON mapping, with the protos' field names."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _field_path(violation: protovalidate.Violation) -> str:
    path = violation.proto.field
    return ".".join(element.field_name for element in (path.elements if path is not None else ()))
