"""Channel factories: credentials, retry policy, keepalive and size limits in one place."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import grpc.aio

_SERVICES = ("crm.ai.v1.ScoringService", "crm.ai.v1.WorkflowService", "crm.ai.v1.InsightService")

DEFAULT_SERVICE_CONFIG: dict[str, Any] = {
    "methodConfig": [
        {
            "name": [{"service": name} for name in _SERVICES],
            # Only UNAVAILABLE: the request never reached a handler or the server is draining.
            # Creates carry a request_id, so even a retried create is safe.
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.1s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}

_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


def _options(retry: bool, extra: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.enable_retries", 1 if retry else 0),
    ]
    if retry:
        options.append(("grpc.service_config", json.dumps(DEFAULT_SERVICE_CONFIG)))
    options.extend(extra)
    return options


class _BearerAuth(grpc.AuthMetadataPlugin):
    def __init__(self, token: Callable[[], str]) -> None:
        self._token = token

    def __call__(
        self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        callback((("authorization", f"Bearer {self._token()}"),), None)


def _token_source(token: str | Callable[[], str] | None) -> Callable[[], str] | None:
    if token is None or callable(token):
        return token
    return lambda: token


def _secure_credentials(
    token: Callable[[], str] | None, root_certificates: bytes | None
) -> grpc.ChannelCredentials:
    creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
    if token is None:
        return creds
    return grpc.composite_channel_credentials(
        creds, grpc.metadata_call_credentials(_BearerAuth(token))
    )


def _insecure_token_credentials(token: Callable[[], str]) -> grpc.ChannelCredentials:
    # gRPC refuses call credentials on plaintext channels except with local credentials, which
    # is what a loopback or in-cluster sidecar connection is.
    return grpc.composite_channel_credentials(
        grpc.local_channel_credentials(grpc.LocalConnectionType.LOCAL_TCP),
        grpc.metadata_call_credentials(_BearerAuth(token)),
    )


def _credentials(
    token: str | Callable[[], str] | None, tls: bool, root_certificates: bytes | None
) -> grpc.ChannelCredentials | None:
    """Channel credentials for the arguments; ``None`` means a plain insecure channel."""
    source = _token_source(token)
    if tls:
        return _secure_credentials(source, root_certificates)
    if source is not None:
        return _insecure_token_credentials(source)
    return None


def aio_channel(
    target: str,
    *,
    token: str | Callable[[], str] | None = None,
    tls: bool = False,
    root_certificates: bytes | None = None,
    retry: bool = True,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.aio.Channel:
    """An asyncio channel to ``target`` (``host:port``).

    ``token`` is a JWT or a callable returning a fresh one per call. With ``tls=False`` the
    connection is plaintext and a token is only sent to a local (loopback) address.
    """
    creds = _credentials(token, tls, root_certificates)
    opts = _options(retry, options)
    if creds is None:
        return grpc.aio.insecure_channel(target, opts)
    return grpc.aio.secure_channel(target, creds, opts)


def channel(
    target: str,
    *,
    token: str | Callable[[], str] | None = None,
    tls: bool = False,
    root_certificates: bytes | None = None,
    retry: bool = True,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A blocking channel; same arguments as :func:`aio_channel`."""
    creds = _credentials(token, tls, root_certificates)
    opts = _options(retry, options)
    if creds is None:
        return grpc.insecure_channel(target, opts)
    return grpc.secure_channel(target, creds, opts)
