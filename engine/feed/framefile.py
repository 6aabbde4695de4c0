"""Recorded feed frames: the raw binary WebSocket messages with their receive times (no pickle).

Layout (all integers little-endian):

    header  : magic b"ATFRAMES" (8 bytes), format version u16 (= 1), reserved u16 (= 0)
    record* : recv_ms i64 (epoch milliseconds), length u32, frame bytes (`length` of them)

A file cut short by a crash loses at most its last, partial record: `read_frames` stops there.
`write_frames` appends to an existing file (after checking its header).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

MAGIC = b"ATFRAMES"
VERSION = 1
_HEADER = struct.Struct("<8sHH")
_RECORD = struct.Struct("<qI")
MAX_FRAME_BYTES = 64 * 1024 * 1024


class FrameFileError(ValueError):
    """The file is not a frame file (or of an unknown version)."""


class FrameWriter:
    """Appends (recv_ms, frame) records; use as a context manager or call `close()`."""

    def __init__(self, path: Path | str, *, flush_every: int = 1) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        is_new = not self.path.exists() or self.path.stat().st_size == 0
        if not is_new:
            _check_header(self.path)
        self._file: BinaryIO = self.path.open("ab")
        if is_new:
            self._file.write(_HEADER.pack(MAGIC, VERSION, 0))
        self._flush_every = max(1, flush_every)
        self.count = 0

    def write(self, recv_ms: int, frame: bytes) -> None:
        if len(frame) > MAX_FRAME_BYTES:
            raise ValueError(f"frame of {len(frame)} bytes exceeds {MAX_FRAME_BYTES}")
        self._file.write(_RECORD.pack(recv_ms, len(frame)))
        self._file.write(frame)
        self.count += 1
        if self.count % self._flush_every == 0:
            self._file.flush()

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def write_frames(path: Path | str, *, flush_every: int = 1) -> FrameWriter:
    """Open `path` for appending frames: `with write_frames(p) as out: out.write(recv_ms, data)`."""
    return FrameWriter(path, flush_every=flush_every)


def _check_header(path: Path) -> None:
    with path.open("rb") as file:
        _read_header(file, path)


def _read_header(file: BinaryIO, path: Path) -> None:
    header = file.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise FrameFileError(f"{path}: too short for a frame file header")
    magic, version, _ = _HEADER.unpack(header)
    if magic != MAGIC:
        raise FrameFileError(f"{path}: not a frame file (magic {magic!r})")
    if version != VERSION:
        raise FrameFileError(f"{path}: frame file version {version}, this build reads {VERSION}")


def read_frames(path: Path | str) -> Iterator[tuple[int, bytes]]:
    """Yield (recv_ms, frame) in file order. A partial last record (a crash mid-write) is skipped."""
    path = Path(path)
    with path.open("rb") as file:
        _read_header(file, path)
        while True:
            head = file.read(_RECORD.size)
            if len(head) < _RECORD.size:
                return
            recv_ms, length = _RECORD.unpack(head)
            if length > MAX_FRAME_BYTES:
                raise FrameFileError(f"{path}: record of {length} bytes at offset {file.tell() - _RECORD.size}")
            frame = file.read(length)
            if len(frame) < length:
                return
            yield recv_ms, frame
