"""Logging set-up: readable lines or one JSON object per line, with the call's identity.

Every record carries, where there is one, the trace and span ids of the current span, and the
correlation id, tenant, RPC and run of the work being done (:func:`bind_log_context`: the RPC
pipeline binds it per call, the workflow engine per run). The libraries' own loggers (litellm,
httpx, ...) are quiet by default, and litellm's own handler is removed so that each of its
records is written once, by ours.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson
from opentelemetry import trace

__all__ = [
    "LIBRARY_LOGGERS",
    "JsonFormatter",
    "LogContext",
    "bind_log_context",
    "configure_logging",
    "quiet_libraries",
    "requiet_libraries",
]

LIBRARY_LOGGERS: Final[tuple[str, ...]] = (
    "LiteLLM",
    "LiteLLM Router",
    "LiteLLM Proxy",
    "litellm",
    "httpx",
    "httpcore",
    "openai",
    "urllib3",
    "langgraph",
    "langchain",
    "opentelemetry",
    "aiosqlite",
    "alembic",
    "mcp",
    "uvicorn",
)
"""Third-party loggers held at ``AIO_LOG_LIBRARY_LEVEL`` (WARNING by default)."""


@dataclass(frozen=True, slots=True)
class LogContext:
    """Who and what the current work is for, added to each of its log records."""

    correlation_id: str = ""
    """The RPC's correlation id (the ``x-correlation-id`` trailer)."""
    tenant: str = ""
    """The caller's tenant."""
    rpc: str = ""
    """The full method name, ``/crm.ai.v1.ScoringService/ScoreLead``."""
    run_id: str = ""
    """The workflow run being executed."""


_context: contextvars.ContextVar[LogContext | None] = contextvars.ContextVar(
    "aio_log_context", default=None
)


def bind_log_context(context: LogContext) -> None:
    """Bind ``context`` to the current task (and the tasks it starts) for its log records."""
    _context.set(context)


# Attributes every LogRecord has: what is not one of them came in through ``extra=``.
_RECORD_FIELDS: Final[frozenset[str]] = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, trace/span ids, the bound
    :class:`LogContext`, ``extra=`` fields, and the exception as text."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        document: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            document["trace_id"] = format(span.trace_id, "032x")
            document["span_id"] = format(span.span_id, "016x")
        bound = _context.get()
        if bound is not None:
            for name in ("correlation_id", "tenant", "rpc", "run_id"):
                if value := getattr(bound, name):
                    document[name] = value
        for key, value in record.__dict__.items():
            if key not in _RECORD_FIELDS and key not in document:
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        return orjson.dumps(document, default=str).decode()


class _TextFormatter(logging.Formatter):
    """``time level logger message``, then the correlation id and tenant in brackets."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        bound = _context.get()
        if bound is None or not (bound.correlation_id or bound.run_id):
            return line
        who = " ".join(
            f"{name}={value}"
            for name in ("correlation_id", "tenant", "run_id")
            if (value := getattr(bound, name))
        )
        head, newline, rest = line.partition("\n")
        return f"{head} [{who}]{newline}{rest}"


def quiet_libraries(level: str | int, names: Iterable[str] = LIBRARY_LOGGERS) -> None:
    """Hold the libraries' loggers at ``level`` and drop the handlers they installed on
    themselves (litellm's prints every record a second time beside the root's)."""
    for name in names:
        logger = logging.getLogger(name)
        logger.setLevel(level if isinstance(level, int) else level.upper())
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
        logger.propagate = True


def configure_logging(
    level: str,
    *,
    log_format: Literal["text", "json"] = "text",
    library_level: str = "WARNING",
) -> None:
    """Configure the root logger (calling it again changes its level and format)."""
    root = logging.getLogger()
    handler: logging.Handler | None = getattr(root, "_aio_handler", None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        root.addHandler(handler)
        root._aio_handler = handler  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if log_format == "json" else _TextFormatter())
    root.setLevel(level.upper())
    root._aio_library_level = library_level  # type: ignore[attr-defined]
    quiet_libraries(library_level)


def requiet_libraries() -> None:
    """Apply :func:`configure_logging`'s library level again: litellm installs its handlers
    when it is imported, which may be after logging was configured."""
    level = getattr(logging.getLogger(), "_aio_library_level", None)
    if level is not None:
        quiet_libraries(level)
