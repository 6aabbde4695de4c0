"""Frame files: appended records read back in order, a torn last record skipped, foreign files refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.feed.framefile import MAGIC, FrameFileError, read_frames, write_frames


def test_frames_round_trip_and_append(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "day.frames"
    records = [(1_717_472_700_000 + i, bytes([i]) * i) for i in range(5)]
    with write_frames(path) as out:
        for recv_ms, frame in records[:3]:
            out.write(recv_ms, frame)
    with write_frames(path) as out:  # a second session appends
        for recv_ms, frame in records[3:]:
            out.write(recv_ms, frame)
    assert list(read_frames(path)) == records
    assert path.read_bytes().startswith(MAGIC)


def test_a_torn_last_record_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "torn.frames"
    with write_frames(path) as out:
        out.write(1, b"complete")
        out.write(2, b"torn-record")
    path.write_bytes(path.read_bytes()[:-4])
    assert list(read_frames(path)) == [(1, b"complete")]


def test_a_file_that_is_not_a_frame_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.bin"
    path.write_bytes(b"PAR1 not frames at all")
    with pytest.raises(FrameFileError, match="not a frame file"):
        list(read_frames(path))
    with pytest.raises(FrameFileError, match="not a frame file"):
        write_frames(path)
    assert path.read_bytes() == b"PAR1 not frames at all"  # nothing lost
