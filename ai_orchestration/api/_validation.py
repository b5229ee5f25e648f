"""Request validation from the ``buf.validate`` rules declared in the protos."""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any, NoReturn, TypeVar

import protovalidate
from google.protobuf.message import Message

from ai_orchestration.api._times import invalid_times
from ai_orchestration.errors import FieldViolation, InvalidArgumentError

_validator = protovalidate.Validator()


def _field_path(violation: protovalidate.Violation) -> str:
    parts: list[str] = []
    path = violation.proto.field
    for element in path.elements if path is not None else ():
        part = element.field_name
        subscript: Any = element.subscript
        if subscript is not None:
            key = subscript.value
            part += f'["{key}"]' if isinstance(key, str) else f"[{int(key)}]"
        parts.append(part)
    return ".".join(parts)


def _rule_reason(rule_id: str) -> str:
    # google.rpc.BadRequest.FieldViolation.reason is UPPER_SNAKE_CASE: "string.min_len" ->
    # "STRING_MIN_LEN".
    return "".join(ch if ch.isalnum() else "_" for ch in rule_id).upper()


_F = TypeVar("_F", bound=Callable[..., Any])


def validates_own_request(handler: _F) -> _F:
    """Marks a handler that validates its request itself (with :func:`validate_request`), so the
    pipeline does not: BatchScoreLeads checks its up to 10,000 leads while worker processes
    already score the first chunks, and stores and sends nothing before the check passed."""
    handler.validates_own_request = True  # type: ignore[attr-defined]
    return handler


def validates_itself(handler: object) -> bool:
    """Whether ``handler`` (a servicer method, bound or not) is marked
    :func:`validates_own_request`."""
    return bool(getattr(handler, "validates_own_request", False))


def validate_request(message: Message) -> None:
    """Raise :class:`InvalidArgumentError` listing every violated rule of ``message``.

    Times and durations that are no valid value are reported first and alone (see
    :mod:`._times`): the declared rules cannot be evaluated on them.
    """
    if times := invalid_times(message):
        _raise(message, times)
    violations = _validator.collect_violations(message)
    if not violations:
        return
    _raise(
        message,
        [
            FieldViolation(
                field=_field_path(violation),
                description=violation.proto.message or violation.proto.rule_id,
                rule=_rule_reason(violation.proto.rule_id),
            )
            for violation in violations
        ],
    )


def _raise(message: Message, fields: list[FieldViolation]) -> NoReturn:
    summary = "; ".join(f"{item.field}: {item.description}" for item in fields[:5])
    more = f" (and {len(fields) - 5} more)" if len(fields) > 5 else ""
    raise InvalidArgumentError(f"invalid {message.DESCRIPTOR.name}: {summary}{more}", fields)


def masked_paths(paths: Collection[str], settable: Collection[str]) -> list[str]:
    """The fields an ``update_mask`` names, in ``settable`` order (all of them for an empty
    mask); ``INVALID_ARGUMENT`` on ``update_mask.paths`` naming any field not settable."""
    unknown = sorted(set(paths) - set(settable))
    if unknown:
        raise InvalidArgumentError(
            "invalid update_mask",
            [
                FieldViolation(
                    "update_mask.paths",
                    f"cannot update {', '.join(unknown)}; settable fields: {', '.join(settable)}",
                    "update_mask_settable",
                )
            ],
        )
    return [name for name in settable if not paths or name in paths]


def bad_page_token(error: ValueError) -> InvalidArgumentError:
    """``INVALID_ARGUMENT`` on ``page_token`` for a token the repository refused (its message
    says what to send instead)."""
    return InvalidArgumentError(
        "invalid page token", [FieldViolation("page_token", str(error), "page_token_valid")]
    )
