"""The generated code in engine/feed/proto/ matches what `make proto` produces from proto/ today."""

from __future__ import annotations

from pathlib import Path

from engine.feed.proto import generate


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    fresh = generate.generate(tmp_path)
    committed = Path(generate.__file__).resolve().parent
    stale = [path.name for path in fresh if path.read_bytes() != (committed / path.name).read_bytes()]
    assert not stale, f"stale generated code {stale}: run `make proto` and commit the result"


def test_schema_is_registered_apart_from_the_sdk_schema() -> None:
    from upstox_client.feeder.proto import MarketDataFeedV3_pb2 as sdk

    from engine.feed.proto import MarketDataFeedV3_pb2 as ours

    assert ours.DESCRIPTOR.name == "proto/MarketDataFeedV3.proto"
    assert ours.DESCRIPTOR.package == "autotrader.feed.v3"
    assert sdk.DESCRIPTOR.name != ours.DESCRIPTOR.name
    assert sdk.DESCRIPTOR.package != ours.DESCRIPTOR.package
