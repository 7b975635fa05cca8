"""The Standard MIDI File container, checked in Python before the compiled scan (``vaelib.data.smf``).

``chunks`` is O(number of chunks): empty file, ``MThd`` header (a RIFF ``RMID`` wrapper is unwrapped), chunk walk
up to the header's track count (trailing bytes, e.g. seq66's proprietary data, are ignored as mido does); chunks
that are not ``MTrk`` are skipped as the SMF spec asks. ``MidiReadError`` is the one error type of MIDI reading.
"""
from __future__ import annotations

import re

import numpy as np

_CHUNK_TYPE = re.compile(rb"[\x20-\x7e]{4}")  # chunk types are 4 printable ASCII characters


class MidiReadError(ValueError):
    """A MIDI file that gives no bass windows; ``reason`` is a short machine-usable code."""

    def __init__(self, reason: str, detail: str = "", path: str = ""):
        super().__init__(reason, detail, path)
        self.reason = reason
        self.detail = detail
        self.path = path

    def __str__(self) -> str:
        return f"{self.path or 'MIDI'}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


def chunks(data: bytes):
    """(data (n_bytes,) uint8, ticks per quarter, smpte, starts, ends (n_chunks,) of the MTrk chunks);
    raises MidiReadError on a bad container."""
    if len(data) == 0:
        raise MidiReadError("empty")
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":
        k = data.find(b"MThd")
        data = data[k:] if k >= 0 else b""
    if data[:4] != b"MThd":
        raise MidiReadError("not_midi", "no MThd header")
    if len(data) < 14:
        raise MidiReadError("truncated", "header cut short")
    hlen = int.from_bytes(data[4:8], "big")
    fmt, ntrks, division = (int.from_bytes(data[i:i + 2], "big") for i in (8, 10, 12))
    if hlen < 6 or fmt > 2 or division == 0:
        raise MidiReadError("bad_header", f"length={hlen} format={fmt} division={division}")
    smpte = bool(division & 0x8000)
    if smpte:  # frames/s * ticks/frame, read as quarter notes at 120 BPM (SMPTE files carry no tempo)
        fps, tpf = 256 - (division >> 8), division & 0xFF
        tpq = max(1, fps * tpf // 2)
    else:
        tpq = division
    starts, ends, pos = [], [], 8 + hlen
    while pos + 8 <= len(data) and len(starts) < ntrks:  # bytes after the last track are ignored
        ctype, length = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "big")
        if not _CHUNK_TYPE.fullmatch(ctype):
            raise MidiReadError("bad_chunk", f"garbage chunk header at byte {pos}")
        if pos + 8 + length > len(data):
            raise MidiReadError("truncated", f"chunk at byte {pos} claims {length} bytes")
        if ctype == b"MTrk":
            starts.append(pos + 8)
            ends.append(pos + 8 + length)
        pos += 8 + length
    if len(starts) < ntrks:
        raise MidiReadError("truncated", f"{len(starts)} of {ntrks} tracks")
    arr = np.frombuffer(data, np.uint8)
    return arr, tpq, smpte, np.array(starts, np.int64), np.array(ends, np.int64)

