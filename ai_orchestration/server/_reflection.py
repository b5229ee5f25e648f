"""Server reflection that serves the contract's files with their doc comments.

Generated ``_pb2`` modules register their files without source info, so the stock reflection
servicer would show ``grpcurl describe`` no comments. ``make proto`` writes the contract's
descriptor set with source info next to this module (``descriptor_set.binpb``); reflection looks
symbols up in the process's descriptor pool as usual and answers with the commented copy of each
contract file. A copy that does not match the generated code (a stale set) is not served: the
comment-less file from the pool is, rather than a contract the server does not speak.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any, Final

import grpc.aio
from google.protobuf import descriptor_pool
from google.protobuf.descriptor_pb2 import (
    FieldDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
)
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

__all__ = ["enable_reflection"]

DESCRIPTOR_SET: Final[str] = "descriptor_set.binpb"
"""Resource of this package holding the contract's ``FileDescriptorSet`` with source info."""

_log = logging.getLogger(__name__)


def _shape(file: FileDescriptorProto) -> FileDescriptorProto:
    """``file`` without what generated code leaves out: source info and JSON names."""
    copy = FileDescriptorProto()
    copy.CopyFrom(file)
    copy.ClearField("source_code_info")
    messages = list(copy.message_type)
    fields: list[FieldDescriptorProto] = list(copy.extension)
    while messages:
        message = messages.pop()
        messages.extend(message.nested_type)
        fields.extend(message.field)
        fields.extend(message.extension)
    for field in fields:
        field.ClearField("json_name")
    return copy


def commented_files(
    data: bytes, pool: descriptor_pool.DescriptorPool | None = None
) -> dict[str, bytes]:
    """Serialized files of the descriptor set ``data`` by name, those matching ``pool``'s
    (the default pool: the generated code) only."""
    pool = pool or descriptor_pool.Default()
    files: dict[str, bytes] = {}
    for file in FileDescriptorSet.FromString(data).file:
        try:
            served = FileDescriptorProto.FromString(pool.FindFileByName(file.name).serialized_pb)
        except KeyError:
            continue  # not imported by this process: nothing would ask for it
        if _shape(file) != _shape(served):
            _log.warning(
                "%s in %s differs from the generated code (run 'make proto'); reflection serves "
                "it without comments",
                file.name,
                DESCRIPTOR_SET,
            )
            continue
        files[file.name] = file.SerializeToString()
    return files


class _CommentedReflection(reflection.aio.ReflectionServicer):  # type: ignore[misc]
    """The stock servicer, with the commented copy of each contract file in its answers."""

    def __init__(self, service_names: Iterable[str], *, files: Mapping[str, bytes]) -> None:
        super().__init__(service_names)
        self._files = files

    def _commented(
        self, response: reflection_pb2.ServerReflectionResponse
    ) -> reflection_pb2.ServerReflectionResponse:
        if response.HasField("file_descriptor_response"):
            protos = response.file_descriptor_response.file_descriptor_proto
            for index, raw in enumerate(protos):
                name = FileDescriptorProto.FromString(raw).name
                protos[index] = self._files.get(name, raw)
        return response

    def _file_by_filename(self, request: Any, filename: str) -> Any:
        return self._commented(super()._file_by_filename(request, filename))

    def _file_containing_symbol(self, request: Any, fully_qualified_name: str) -> Any:
        return self._commented(super()._file_containing_symbol(request, fully_qualified_name))

    def _file_containing_extension(
        self, request: Any, containing_type: str, extension_number: int
    ) -> Any:
        return self._commented(
            super()._file_containing_extension(request, containing_type, extension_number)
        )


def enable_reflection(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serve reflection (v1alpha) for ``service_names`` and the reflection service itself."""
    data = resources.files("ai_orchestration.server").joinpath(DESCRIPTOR_SET).read_bytes()
    names = (*service_names, reflection.SERVICE_NAME)
    servicer = _CommentedReflection(names, files=commented_files(data))
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
