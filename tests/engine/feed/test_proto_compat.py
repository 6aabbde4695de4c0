"""Wire compatibility, both ways, between our schema and upstox-python-sdk's
`upstox_client.feeder.proto.MarketDataFeedV3_pb2`, for every message type and every oneof branch."""

from __future__ import annotations

import itertools
from types import ModuleType

import pytest
from google.protobuf import unknown_fields
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as sdk

from engine.feed.proto import MarketDataFeedV3_pb2 as ours

MESSAGE_NAMES = sorted(ours.DESCRIPTOR.message_types_by_name)
ENUM_NAMES = sorted(ours.DESCRIPTOR.enum_types_by_name)


def _fill(message: Message, counter: itertools.count, choices: dict[str, str]) -> None:
    """Set every field of `message` to a distinct non-default value; in each oneof only the branch named in
    `choices` (default: the first)."""
    descriptor: Descriptor = message.DESCRIPTOR
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and choices.get(oneof.name, oneof.fields[0].name) != field.name:
            continue
        n = next(counter)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            container = getattr(message, field.name)
            for key in (f"NSE_EQ|K{n}", f"NSE_FO|K{n + 1}"):
                if value_field.message_type is not None:
                    _fill(container[key], counter, {})
                else:
                    container[key] = value_field.enum_type.values[-1].number
        elif field.message_type is not None:
            if field.is_repeated:
                for _ in range(2):
                    _fill(getattr(message, field.name).add(), counter, {})
            else:
                _fill(getattr(message, field.name), counter, {})
        else:
            value = _scalar(field, n)
            if field.is_repeated:
                getattr(message, field.name).extend([value, value])
            else:
                setattr(message, field.name, value)


def _scalar(field: FieldDescriptor, n: int) -> object:
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return 1234.5 + n * 0.05
    if field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_INT32):
        return 1_717_472_700_000 + n
    if field.type == FieldDescriptor.TYPE_BOOL:
        return True
    if field.type == FieldDescriptor.TYPE_STRING:
        return f"s{n}"
    if field.type == FieldDescriptor.TYPE_ENUM:
        return field.enum_type.values[(n % (len(field.enum_type.values) - 1)) + 1].number
    raise AssertionError(f"unhandled field type {field.type} of {field.full_name}")


def _variants(name: str) -> list[dict[str, str]]:
    """One oneof choice per branch of each oneof of the message (at least one variant)."""
    descriptor = ours.DESCRIPTOR.message_types_by_name[name]
    variants = [{oneof.name: field.name} for oneof in descriptor.oneofs for field in oneof.fields]
    return variants or [{}]


CASES = [(name, choices) for name in MESSAGE_NAMES for choices in _variants(name)]


def _build(module: ModuleType, name: str, choices: dict[str, str]) -> Message:
    message = getattr(module, name)()
    _fill(message, itertools.count(1), choices)
    return message


def test_every_message_type_of_the_sdk_schema_exists_in_ours() -> None:
    assert sorted(sdk.DESCRIPTOR.message_types_by_name) == MESSAGE_NAMES
    assert sorted(sdk.DESCRIPTOR.enum_types_by_name) == ENUM_NAMES


@pytest.mark.parametrize("name", MESSAGE_NAMES)
def test_fields_have_the_same_numbers_types_and_names(name: str) -> None:
    def shape(descriptor: Descriptor) -> list[tuple]:
        rows = []
        for field in descriptor.fields:
            nested = field.message_type.name if field.message_type else None
            oneof = field.containing_oneof.name if field.containing_oneof else None
            rows.append((field.number, field.name, field.type, field.is_repeated, nested, oneof))
        for nested_type in descriptor.nested_types:
            rows.append(("nested", nested_type.name, *shape(nested_type)))
        return sorted(rows, key=repr)

    assert shape(ours.DESCRIPTOR.message_types_by_name[name]) == shape(sdk.DESCRIPTOR.message_types_by_name[name])


@pytest.mark.parametrize("name", ENUM_NAMES)
def test_enums_have_the_same_values(name: str) -> None:
    def values(module: ModuleType) -> list[tuple[str, int]]:
        return [(v.name, v.number) for v in module.DESCRIPTOR.enum_types_by_name[name].values]

    assert values(ours) == values(sdk)


@pytest.mark.parametrize(("name", "choices"), CASES, ids=[f"{n}-{'-'.join(c.values()) or 'all'}" for n, c in CASES])
@pytest.mark.parametrize(("writer", "reader"), [(ours, sdk), (sdk, ours)], ids=["ours-to-sdk", "sdk-to-ours"])
def test_bytes_from_one_schema_decode_to_the_same_values_in_the_other(
    name: str, choices: dict[str, str], writer: ModuleType, reader: ModuleType
) -> None:
    written = _build(writer, name, choices)
    data = written.SerializeToString(deterministic=True)
    read = getattr(reader, name).FromString(data)
    assert not unknown_fields.UnknownFieldSet(read), "fields the reader does not know"
    as_dict = MessageToDict(read, preserving_proto_field_name=True)
    assert as_dict == MessageToDict(written, preserving_proto_field_name=True)
    assert as_dict  # every case sets something
    assert read.SerializeToString(deterministic=True) == data
    # the expected values, independently of either schema: built in the reader's classes directly
    assert read == _build(reader, name, choices)
