"""Every RPC of the contract, fed requests generated from its descriptors.

For each method of every ``crm.ai.v1`` service (and the health service), whatever the protos say
today, the requests are: the empty message; garbage bytes; each scalar field, down to three
levels, set alone to extreme values (the largest and smallest numbers, NaN and infinities, an
enum number nobody defined, very long and odd strings); every ``Timestamp`` and ``Duration`` set
to values that are no valid time; every repeated and map field filled with 200 bad items. A new
RPC or field is covered without touching this test.

Every answer must be a deliberate one: no ``INTERNAL`` or ``UNKNOWN``, a ``BadRequest`` with
every ``INVALID_ARGUMENT``, trailers a default client accepts (under 8 KiB); and the server must
still be SERVING at the end. Seeded, so a failure repeats.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, Final

import grpc
import grpc.aio
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ai_orchestration.server import Server
from tests.api.conftest import write_llm_config
from tests.conftest import TokenFactory, running_server, server_settings
from tests.contract.test_bad_input import TRAILER_BUDGET, trailer_bytes
from tests.fixtures.llm_server import LlmTestServer


def contract_modules() -> list[Any]:
    """Every generated ``*_pb2`` module of the ``crm.ai.v1`` package: a new proto file and its
    services are fuzzed without a change here."""
    import crm.ai.v1 as package  # noqa: PLC0415

    return [
        importlib.import_module(f"crm.ai.v1.{info.name}")
        for info in pkgutil.iter_modules(package.__path__)
        if info.name.endswith("_pb2")
    ]


SERVICES: Final = [
    service
    for module in contract_modules()
    for service in module.DESCRIPTOR.services_by_name.values()
] + [health_pb2.DESCRIPTOR.services_by_name["Health"]]
METHODS: Final = [method for service in SERVICES for method in service.methods]
MAX_VARIANTS: Final = 400
"""Requests per method at most (a seeded sample when the descriptors give more)."""
DEPTH: Final = 4
REPEATS: Final = 200
CALL_TIMEOUT: Final = 20.0
STREAM_MESSAGES: Final = 1
"""Messages read from a server stream before it is cancelled: an answer has begun (a health
watch or a run's events may go on for as long as one listens)."""
STREAM_TIMEOUT: Final = 5.0
GARBAGE: Final[tuple[bytes, ...]] = (
    b"\xff\xff\xff\xff",
    b"\x0a\x02\xff\xfe",  # field 1 as a string holding invalid UTF-8
    b"\x0a\xff\xff\xff\xff\x0f",  # a length far past the end
    b"\x08\x80",  # a varint cut short
    b"\x0a\x01" * 3 + b"\x0b",  # a group start nobody declared
    bytes(random.Random(7).randrange(256) for _ in range(64)),
)
_INTS: Final[dict[int, tuple[int, ...]]] = {
    FieldDescriptor.TYPE_INT32: (2**31 - 1, -(2**31)),
    FieldDescriptor.TYPE_SINT32: (2**31 - 1, -(2**31)),
    FieldDescriptor.TYPE_SFIXED32: (2**31 - 1, -(2**31)),
    FieldDescriptor.TYPE_INT64: (2**63 - 1, -(2**63)),
    FieldDescriptor.TYPE_SINT64: (2**63 - 1, -(2**63)),
    FieldDescriptor.TYPE_SFIXED64: (2**63 - 1, -(2**63)),
    FieldDescriptor.TYPE_UINT32: (2**32 - 1,),
    FieldDescriptor.TYPE_FIXED32: (2**32 - 1,),
    FieldDescriptor.TYPE_UINT64: (2**64 - 1,),
    FieldDescriptor.TYPE_FIXED64: (2**64 - 1,),
}
_STRINGS: Final = (
    "x" * 20_000,
    "bad id!",
    "\u202e\u0000\ud7ff" * 50,
    "'; DROP TABLE runs; --",
    " ",
)
_FLOATS: Final = (math.nan, math.inf, -math.inf, 1e308, -1e-308)
_TIMESTAMPS: Final = ((0, 1_000_000_000), (253_402_300_800, 0), (-(2**62), 0), (0, -1))
_DURATIONS: Final = ((2**62, 0), (1, -1), (0, 1_000_000_000), (-(2**62), 0))

Mutation = Callable[[Message], None]
"""Sets one field of a message (the message the field belongs to)."""


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def _new(descriptor: Descriptor) -> Message:
    return message_factory.GetMessageClass(descriptor)()


_BY_TYPE: Final[dict[int, tuple[Any, ...]]] = {
    **_INTS,
    FieldDescriptor.TYPE_DOUBLE: _FLOATS,
    FieldDescriptor.TYPE_FLOAT: _FLOATS,
    FieldDescriptor.TYPE_BOOL: (True,),
    FieldDescriptor.TYPE_STRING: _STRINGS,
    FieldDescriptor.TYPE_BYTES: (b"\x00" * 10_000,),
}


def _scalar_values(field: FieldDescriptor) -> tuple[Any, ...]:
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return (max(v.number for v in field.enum_type.values) + 1, -1)
    return _BY_TYPE.get(field.type, ())


def _mutations(field: FieldDescriptor) -> Iterator[tuple[str, Mutation]]:
    """Ways to set ``field`` badly, on the message that holds it."""
    kind = field.message_type.full_name if field.message_type is not None else ""
    is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
    if is_map:
        yield "map", lambda m: _fill_map(m, field)
    elif field.is_repeated:
        yield "repeated", lambda m: _fill_repeated(m, field)
    elif kind == "google.protobuf.Timestamp":
        for seconds, nanos in _TIMESTAMPS:
            yield f"ts({seconds},{nanos})", _time_setter(field, seconds, nanos)
    elif kind == "google.protobuf.Duration":
        for seconds, nanos in _DURATIONS:
            yield f"dur({seconds},{nanos})", _time_setter(field, seconds, nanos)
    elif field.message_type is None:
        for value in _scalar_values(field):
            yield repr(value)[:20], _scalar_setter(field, value)


def _scalar_setter(field: FieldDescriptor, value: Any) -> Mutation:
    return lambda m: setattr(m, field.name, value)


def _time_setter(field: FieldDescriptor, seconds: int, nanos: int) -> Mutation:
    def mutate(message: Message) -> None:
        value = getattr(message, field.name)
        value.seconds, value.nanos = seconds, nanos

    return mutate


def _bad_item(field: FieldDescriptor) -> Any:
    if field.message_type is None:
        return _scalar_values(field)[0] if _scalar_values(field) else None
    item = _new(field.message_type)
    for inner in field.message_type.fields:  # every string of the item set to a bad id
        if inner.type == FieldDescriptor.TYPE_STRING and not inner.is_repeated:
            setattr(item, inner.name, "bad id!")
    return item


def _fill_repeated(message: Message, field: FieldDescriptor) -> None:
    target = getattr(message, field.name)
    item = _bad_item(field)
    if field.message_type is not None:
        for _ in range(REPEATS):
            target.add().CopyFrom(item)
    elif field.type == FieldDescriptor.TYPE_STRING:
        target.extend(["bad id!"] * REPEATS)
    elif item is not None:
        target.extend([item] * REPEATS)


def _fill_map(message: Message, field: FieldDescriptor) -> None:
    target = getattr(message, field.name)
    assert field.message_type is not None
    value_field = field.message_type.fields_by_name["value"]
    for i in range(REPEATS):
        key = f"bad key {i}!" * 5
        if value_field.message_type is not None:
            target[key].CopyFrom(_bad_item(value_field))
        else:
            target[key] = "v" * 300 if value_field.type == FieldDescriptor.TYPE_STRING else 0


def _fields(
    descriptor: Descriptor, path: tuple[FieldDescriptor, ...] = ()
) -> Iterator[tuple[FieldDescriptor, ...]]:
    """Every field path below ``descriptor`` to at most :data:`DEPTH` levels."""
    for field in descriptor.fields:
        yield (*path, field)
        nested = field.message_type
        simple = nested is not None and nested.full_name.startswith("google.protobuf.")
        is_map = nested is not None and nested.GetOptions().map_entry
        if nested is not None and not simple and not is_map and len(path) + 1 < DEPTH:
            yield from _fields(nested, (*path, field))


def _holder(message: Message, path: tuple[FieldDescriptor, ...]) -> Message:
    """The message at ``path`` (all but its last field), created on the way (one item for a
    repeated field)."""
    for field in path[:-1]:
        message = (
            getattr(message, field.name).add()
            if field.is_repeated
            else getattr(message, field.name)
        )
    return message


def requests_for(method: MethodDescriptor) -> list[tuple[str, bytes]]:
    """The requests sent to ``method``: name and body."""
    made: list[tuple[str, bytes]] = [("empty", b"")]
    made += [(f"garbage{i}", body) for i, body in enumerate(GARBAGE)]
    mutants: list[tuple[str, bytes]] = []
    for path in _fields(method.input_type):
        for label, mutate in _mutations(path[-1]):
            message = _new(method.input_type)
            mutate(_holder(message, path))
            name = ".".join(f.name for f in path)
            mutants.append((f"{name}={label}", message.SerializeToString()))
    room = MAX_VARIANTS - len(made)
    if len(mutants) > room:
        mutants = random.Random(method.full_name).sample(mutants, room)
    return made + mutants


def _answer(error: grpc.aio.AioRpcError) -> list[str]:
    """What is wrong with an error answer (nothing, for a deliberate one)."""
    problems = []
    code = error.code()
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        problems.append(f"{code.name}: {error.details()}")
    if trailer_bytes(error) >= TRAILER_BUDGET:
        problems.append(f"trailers of {trailer_bytes(error)} bytes")
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
        status = status_pb2.Status.FromString(raw) if isinstance(raw, bytes) else None
        if status is None or not any(
            d.Is(error_details_pb2.BadRequest.DESCRIPTOR) for d in status.details
        ):
            problems.append("INVALID_ARGUMENT without BadRequest")
    return problems


async def _send(
    channel: grpc.aio.Channel, method: MethodDescriptor, body: bytes, metadata: Any
) -> None:
    path = _path(method)
    if method.client_streaming and method.server_streaming:
        return  # no bidirectional RPC in the contract
    if method.client_streaming:
        upload: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(path)
        await upload(iter([body, body]), metadata=metadata, timeout=CALL_TIMEOUT)
    elif method.server_streaming:
        watch: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(path)
        stream = watch(body, metadata=metadata, timeout=STREAM_TIMEOUT)
        read = 0
        async for _ in stream:
            read += 1
            if read == STREAM_MESSAGES:
                stream.cancel()
                break
    else:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(path)
        await call(body, metadata=metadata, timeout=CALL_TIMEOUT)


@pytest.fixture
async def fuzzed_server(tmp_path: Path, llm_server: LlmTestServer) -> AsyncIterator[Server]:
    settings = server_settings(
        tmp_path, llm_config_file=str(write_llm_config(tmp_path / "llm.yaml", llm_server))
    )
    async with running_server(settings) as running:
        yield running


def test_every_rpc_of_the_contract_is_fuzzed() -> None:
    names = {m.name for m in METHODS}
    assert {"ScoreLead", "BatchScoreLeads", "StartRun", "StreamRun", "GetUsage"} <= names
    assert {"IngestInteractions", "WatchAlerts", "Check"} <= names
    assert all(len(requests_for(m)) > len(GARBAGE) for m in METHODS)


@pytest.mark.timeout(300)
async def test_no_request_gets_an_undeliberate_answer(
    fuzzed_server: Server, token: TokenFactory
) -> None:
    metadata = (("authorization", f"Bearer {token()}"),)
    failures: list[str] = []
    codes: Counter[str] = Counter()
    sent = 0
    async with grpc.aio.insecure_channel(fuzzed_server.address) as channel:
        for method in METHODS:
            for name, body in requests_for(method):
                sent += 1
                try:
                    await _send(channel, method, body, metadata)
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as error:
                    codes[error.code().name] += 1
                    failures += [f"{_path(method)} {name}: {p}" for p in _answer(error)]
                except TimeoutError:
                    failures.append(f"{_path(method)} {name}: no answer in {CALL_TIMEOUT} s")
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest())
    assert failures == [], f"{len(failures)} of {sent} requests:\n" + "\n".join(failures[:40])
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    # The requests reached the handlers: most are refused by validation, some are served.
    assert sent > 500 and codes["INVALID_ARGUMENT"] > sent // 2 and codes["OK"] > 10, codes
