"""Write the third-party .proto files our contract imports into ``third_party/protos``.

buf resolves dependencies from the Buf Schema Registry, which this project's machines cannot
reach, so the imports come from packages we already install instead:

* ``google/rpc/*.proto`` are copied from the ``googleapis-common-protos`` wheel, which ships them;
* ``buf/validate/validate.proto`` is not shipped as source by any package, but the ``protovalidate``
  wheel embeds its compiled ``FileDescriptorProto``; this script prints it back as .proto source
  (messages, enums, oneofs, extensions, ranges and options — everything the file uses; comments are
  not in the descriptor and so are lost);
* ``grpc/health/v1/health.proto`` likewise from the ``grpcio-health-checking`` wheel (for the
  TypeScript client's health stubs).

Run by ``make proto``; the output is committed so that buf works without a Python environment.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import shutil
import sys
from pathlib import Path

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_encoding,
    text_format,
)
from google.protobuf.descriptor import FieldDescriptor
from grpc_health.v1 import health_pb2

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "third_party" / "protos"
GOOGLE_RPC = ("status.proto", "error_details.proto", "code.proto")

_TYPES = {
    descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "double",
    descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT: "float",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT64: "int64",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT64: "uint64",
    descriptor_pb2.FieldDescriptorProto.TYPE_INT32: "int32",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED64: "fixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_FIXED32: "fixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    descriptor_pb2.FieldDescriptorProto.TYPE_STRING: "string",
    descriptor_pb2.FieldDescriptorProto.TYPE_BYTES: "bytes",
    descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "uint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED32: "sfixed32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SFIXED64: "sfixed64",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT32: "sint32",
    descriptor_pb2.FieldDescriptorProto.TYPE_SINT64: "sint64",
}
_LABELS = {
    descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL: "optional",
    descriptor_pb2.FieldDescriptorProto.LABEL_REQUIRED: "required",
    descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED: "repeated",
}
_MAX_FIELD_NUMBER = 536870911


def _validate_descriptor_bytes() -> bytes:
    """The serialized FileDescriptorProto of buf/validate/validate.proto inside protovalidate."""
    spec = importlib.util.find_spec("protovalidate")
    if spec is None or spec.origin is None:
        raise SystemExit("protovalidate is not installed: run `make install` first")
    source = Path(spec.origin).parent / "_gen" / "buf" / "validate" / "validate_pb.py"
    tree = ast.parse(source.read_text())
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "file_desc"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, bytes)
        ):
            return node.args[0].value
    raise SystemExit(f"no embedded descriptor found in {source}")


class _Printer:
    """Prints one FileDescriptorProto as proto2/proto3 source."""

    def __init__(self, file: descriptor_pb2.FileDescriptorProto) -> None:
        self.file = file
        self.pool = descriptor_pool.DescriptorPool()
        for dep in (
            descriptor_pb2.DESCRIPTOR,
            *self._wkt("duration", "field_mask", "timestamp"),
        ):
            proto = descriptor_pb2.FileDescriptorProto()
            dep.CopyToProto(proto)
            self.pool.Add(proto)
        self.pool.Add(file)
        self.lines: list[str] = []

    @staticmethod
    def _wkt(*names: str) -> list[object]:
        modules = [importlib.import_module(f"google.protobuf.{name}_pb2") for name in names]
        return [module.DESCRIPTOR for module in modules]

    def _reparse(self, options: object, full_name: str) -> object:
        """Re-read an options message in our pool so its extensions (custom options) resolve."""
        cls = message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))
        msg = cls()
        msg.ParseFromString(options.SerializeToString())  # type: ignore[attr-defined]
        return msg

    def _option_items(self, options: object, full_name: str) -> list[str]:
        msg = self._reparse(options, full_name)
        items: list[str] = []
        for fd, value in msg.ListFields():  # type: ignore[attr-defined]
            name = f"({fd.full_name})" if fd.is_extension else fd.name
            values = value if fd.is_repeated else [value]
            for one in values:
                items.append(f"{name} = {self._value(fd, one)}")
        return items

    @staticmethod
    def _value(fd: FieldDescriptor, value: object) -> str:
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            body = text_format.MessageToString(value, as_one_line=True)  # type: ignore[arg-type]
            return "{" + body + "}"
        if fd.type == FieldDescriptor.TYPE_ENUM:
            return str(fd.enum_type.values_by_number[value].name)  # type: ignore[index]
        if fd.type == FieldDescriptor.TYPE_STRING:
            return '"' + text_encoding.CEscape(str(value), as_utf8=True) + '"'
        if fd.type == FieldDescriptor.TYPE_BOOL:
            return "true" if value else "false"
        return str(value)

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text if text else "")

    def print_file(self) -> str:
        f = self.file
        self.emit(0, f'syntax = "{f.syntax or "proto2"}";')
        self.emit(0, "")
        self.emit(0, f"package {f.package};")
        self.emit(0, "")
        for dep in f.dependency:
            self.emit(0, f'import "{dep}";')
        self.emit(0, "")
        for item in self._option_items(f.options, "google.protobuf.FileOptions"):
            self.emit(0, f"option {item};")
        for ext_group in self._group_extensions(f.extension):
            self._print_extend(0, ext_group)
        for enum in f.enum_type:
            self._print_enum(0, enum)
        for message in f.message_type:
            self._print_message(0, message)
        for service in f.service:
            self._print_service(service)
        return "\n".join(self.lines).rstrip() + "\n"

    @staticmethod
    def _group_extensions(
        extensions: list[descriptor_pb2.FieldDescriptorProto],
    ) -> list[list[descriptor_pb2.FieldDescriptorProto]]:
        groups: dict[str, list[descriptor_pb2.FieldDescriptorProto]] = {}
        for ext in extensions:
            groups.setdefault(ext.extendee, []).append(ext)
        return list(groups.values())

    def _print_extend(self, depth: int, group: list[descriptor_pb2.FieldDescriptorProto]) -> None:
        self.emit(depth, "")
        self.emit(depth, f"extend {group[0].extendee.lstrip('.')} {{")
        for ext in group:
            self._print_field(depth + 1, ext, proto3_optional=False)
        self.emit(depth, "}")

    def _print_enum(self, depth: int, enum: descriptor_pb2.EnumDescriptorProto) -> None:
        self.emit(depth, "")
        self.emit(depth, f"enum {enum.name} {{")
        for item in self._option_items(enum.options, "google.protobuf.EnumOptions"):
            self.emit(depth + 1, f"option {item};")
        for value in enum.value:
            opts = self._option_items(value.options, "google.protobuf.EnumValueOptions")
            suffix = f" [{', '.join(opts)}]" if opts else ""
            self.emit(depth + 1, f"{value.name} = {value.number}{suffix};")
        self._print_reserved(depth + 1, enum.reserved_range, enum.reserved_name, inclusive=True)
        self.emit(depth, "}")

    def _print_reserved(
        self, depth: int, ranges: object, names: object, *, inclusive: bool
    ) -> None:
        for rng in ranges:  # type: ignore[attr-defined]
            end = rng.end if inclusive else rng.end - 1
            self.emit(
                depth,
                f"reserved {rng.start} to {end};" if end != rng.start else f"reserved {rng.start};",
            )
        for name in names:  # type: ignore[attr-defined]
            self.emit(depth, f'reserved "{name}";')

    def _print_message(self, depth: int, message: descriptor_pb2.DescriptorProto) -> None:
        self.emit(depth, "")
        self.emit(depth, f"message {message.name} {{")
        for item in self._option_items(message.options, "google.protobuf.MessageOptions"):
            self.emit(depth + 1, f"option {item};")
        oneof_fields: dict[int, list[descriptor_pb2.FieldDescriptorProto]] = {}
        for fd in message.field:
            if fd.HasField("oneof_index") and not fd.proto3_optional:
                oneof_fields.setdefault(fd.oneof_index, []).append(fd)
        printed_oneofs: set[int] = set()
        maps = {n.name: n for n in message.nested_type if n.options.map_entry}
        for fd in message.field:
            if fd.HasField("oneof_index") and not fd.proto3_optional:
                if fd.oneof_index not in printed_oneofs:
                    printed_oneofs.add(fd.oneof_index)
                    self._print_oneof(depth + 1, message, fd.oneof_index, oneof_fields)
                continue
            entry = maps.get(fd.type_name.rsplit(".", 1)[-1])
            if entry is not None and fd.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
                key, value = (self._type_name(f) for f in entry.field)
                self.emit(depth + 1, f"map<{key}, {value}> {fd.name} = {fd.number};")
                continue
            self._print_field(depth + 1, fd, proto3_optional=fd.proto3_optional)
        for rng in message.extension_range:
            end = "max" if rng.end - 1 >= _MAX_FIELD_NUMBER else str(rng.end - 1)
            self.emit(depth + 1, f"extensions {rng.start} to {end};")
        self._print_reserved(
            depth + 1, message.reserved_range, message.reserved_name, inclusive=False
        )
        for ext_group in self._group_extensions(list(message.extension)):
            self._print_extend(depth + 1, ext_group)
        for enum in message.enum_type:
            self._print_enum(depth + 1, enum)
        for nested in message.nested_type:
            if nested.name not in maps:
                self._print_message(depth + 1, nested)
        self.emit(depth, "}")

    def _print_oneof(
        self,
        depth: int,
        message: descriptor_pb2.DescriptorProto,
        index: int,
        fields: dict[int, list[descriptor_pb2.FieldDescriptorProto]],
    ) -> None:
        oneof = message.oneof_decl[index]
        self.emit(depth, f"oneof {oneof.name} {{")
        for item in self._option_items(oneof.options, "google.protobuf.OneofOptions"):
            self.emit(depth + 1, f"option {item};")
        for fd in fields[index]:
            self._print_field(depth + 1, fd, proto3_optional=False, in_oneof=True)
        self.emit(depth, "}")

    def _print_service(self, service: descriptor_pb2.ServiceDescriptorProto) -> None:
        self.emit(0, "")
        self.emit(0, f"service {service.name} {{")
        for method in service.method:
            request = ("stream " if method.client_streaming else "") + method.input_type
            response = ("stream " if method.server_streaming else "") + method.output_type
            self.emit(1, f"rpc {method.name}({request}) returns ({response});")
        self.emit(0, "}")

    @staticmethod
    def _type_name(fd: descriptor_pb2.FieldDescriptorProto) -> str:
        if fd.type in (
            descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE,
            descriptor_pb2.FieldDescriptorProto.TYPE_ENUM,
        ):
            return "." + fd.type_name.lstrip(".")
        return _TYPES[fd.type]

    def _print_field(
        self,
        depth: int,
        fd: descriptor_pb2.FieldDescriptorProto,
        *,
        proto3_optional: bool,
        in_oneof: bool = False,
    ) -> None:
        type_name = self._type_name(fd)
        label = ""
        if not in_oneof:
            if self.file.syntax == "proto3":
                if fd.label == descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED:
                    label = "repeated "
                elif proto3_optional:
                    label = "optional "
            else:
                label = _LABELS[fd.label] + " "
        opts = self._option_items(fd.options, "google.protobuf.FieldOptions")
        if fd.HasField("default_value"):
            default = fd.default_value
            if fd.type == descriptor_pb2.FieldDescriptorProto.TYPE_STRING:
                default = '"' + text_encoding.CEscape(default, as_utf8=True) + '"'
            opts.insert(0, f"default = {default}")
        suffix = f" [{', '.join(opts)}]" if opts else ""
        self.emit(depth, f"{label}{type_name} {fd.name} = {fd.number}{suffix};")


def _header(source: str, copyright_holder: str = "2023-2026 Buf Technologies, Inc") -> str:
    return (
        "// Generated by tools/vendor_protos.py from " + source + ". DO NOT EDIT.\n"
        "// Copyright " + copyright_holder + ". Licensed under the Apache License,\n"
        "// Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0). Comments are not part of\n"
        "// the compiled descriptor this is printed from; see the upstream documentation.\n\n"
    )


def main() -> int:
    """Write third_party/protos; print what was written."""
    validate = descriptor_pb2.FileDescriptorProto.FromString(_validate_descriptor_bytes())
    target = OUT / validate.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_header("the protovalidate wheel") + _Printer(validate).print_file())
    print(f"wrote {target.relative_to(ROOT)}")

    # grpc.health.v1 for the TypeScript client's health checks, from grpcio-health-checking.

    health = descriptor_pb2.FileDescriptorProto()
    health_pb2.DESCRIPTOR.CopyToProto(health)
    target = OUT / "grpc" / "health" / "v1" / "health.proto"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        _header("the grpcio-health-checking wheel", "2015-2026 The gRPC Authors")
        + _Printer(health).print_file()
    )
    print(f"wrote {target.relative_to(ROOT)}")

    spec = importlib.util.find_spec("google.rpc")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("googleapis-common-protos is not installed")
    rpc_dir = Path(next(iter(spec.submodule_search_locations)))
    for name in GOOGLE_RPC:
        dest = OUT / "google" / "rpc" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(rpc_dir / name, dest)
        print(f"wrote {dest.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
