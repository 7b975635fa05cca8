"""MIDI files <-> ``Performance`` windows: bass-part reading with every CC, and writing.

Reading (``read_midi``)
-----------------------
1. **Container checks in Python** (O(number of chunks)): size cap (``too_large``), empty file,
   ``MThd`` header (a RIFF ``RMID`` wrapper is unwrapped), chunk walk up to the header's track
   count (trailing bytes, e.g. seq66's proprietary data, are ignored as mido does). Chunks that
   are not ``MTrk`` are skipped as the SMF spec asks.
2. **One event scanner in numba** walks every ``MTrk`` and validates it (running status, data
   bytes > 127, events that overrun their chunk). A first pass takes a census per channel (pitch
   histogram, programs, which chunks hold its notes, first note tick); a second pass extracts the
   chosen channel's notes and monitored CCs plus the tempo and time-signature maps, counting
   first and then filling exact-size arrays, and only up to the last window it may return.
   Why not symusic: symusic 0.6 is fast, but its ``Track`` has no channel, it splits a channel by
   program, orders tracks by an undocumented key and drops every note-less channel, so "merge the
   tracks of one channel and keep the CC-only track of the bass channel" cannot be done from its
   output. Walking the raw events once gives channel identity for free and is as fast.
3. **Channel merging:** all tracks are merged per MIDI channel (type 0, 1 and 2 alike: type-2
   tracks are treated as parallel). CCs of the bass channel are kept even when they live in a
   track without notes.
4. **Bass part:** channel 10 (drums) never. Otherwise the channel whose programs include a GM bass
   (32-39) or whose note-carrying tracks are named "bass" (not "bassoon", not "drum") wins; ties
   and files without such hints go to the lowest median pitch among channels holding at least 10%
   of the busiest channel's notes.
5. **Windows:** ``n_bars`` bars of 4/4, i.e. ``4 * n_bars`` quarter notes of the file's tick grid
   starting at tick 0, whatever the time signature says (a 3/4 or 7/8 piece is cut in 16-beat
   windows that ignore its bar lines); with ``require_4_4=True`` windows touching any other
   signature are skipped instead (reason ``not_4_4`` if none is left). The grid is in ticks, so it
   follows the beats through tempo changes; ``tempo_bpm`` is the tempo in force at the window
   start. Windows are taken from the one holding the first bass note, at most ``max_windows``
   consecutive ones; windows without a bass note onset are dropped here (curation's filters judge
   the sparse rest). A note belongs to the window of its (rounded) onset step, is clipped at the
   window end, and a note still sounding from the previous window is not re-attacked.
6. **Quantisation:** onsets, note ends and CC times are rounded to the nearest grid step;
   a same-pitch note-on ends the sounding one; zero-length notes last one step; within a step the
   CC written last in file order (tracks in file order at equal ticks) wins; ``initial_cc`` is the
   value of each monitored CC in force before the window's first step.

Every failure raises ``MidiReadError`` with a machine-usable ``reason``: ``too_large``,
``unreadable`` (OS error), ``empty``, ``not_midi``, ``bad_header``, ``truncated``, ``bad_chunk``,
``bad_event``, ``too_dense``, ``no_notes``, ``no_bass``, ``not_4_4``, ``parse_error`` (anything
else). Nothing else ever escapes ``read_midi``.

Writing (``write_midi``): one mido track on channel 1 with tempo, 4/4, program 38, the CC
snapshot at step 0 and every later CC change, written atomically.
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

import numpy as np
from numba import njit

from vaelib.controllers import DEFAULT_CC_NUMBERS
from vaelib.performance import Performance, ffill_lanes

MAX_BYTES = 32 << 20  # files above this are rejected as "too_large"
MAX_WINDOWS = 64  # windows per file: bounds time and memory on hour-long files
MAX_EVENTS = 1_000_000  # bass-channel events in the windows' span; above: "too_dense"
DRUM_CHANNEL = 9
GM_BASS = range(32, 40)
WRITE_PROGRAM = 38  # GM "Synth Bass 1"
WRITE_TICKS_PER_STEP = 60  # 480 ticks per quarter at 32 steps per bar

_ERRORS = {1: "bad_chunk", 2: "bad_event"}  # codes of the scanner's info[0]


class MidiReadError(ValueError):
    """A MIDI file that gives no bass windows; ``reason`` is a short machine-usable code."""

    def __init__(self, reason: str, detail: str = "", path: str = ""):
        super().__init__(reason, detail, path)
        self.reason = reason
        self.detail = detail
        self.path = path

    def __str__(self) -> str:
        return f"{self.path or 'MIDI'}: {self.reason}" + (f" ({self.detail})" if self.detail else "")


# ---------------------------------------------------------------------------- event scanner
@njit(cache=True, nogil=True)
def _vlq(data, p, end):
    """Variable-length quantity at ``p`` -> (value, next p); next p is -1 on overrun, -2 if > 4 bytes."""
    v = 0
    for _ in range(4):
        if p >= end:
            return 0, -1
        b = data[p]
        p += 1
        v = (v << 7) | (b & 0x7F)
        if b < 0x80:
            return v, p
    return 0, -2


@njit(cache=True, nogil=True)
def _walk(data, starts, ends, channel, ccmask, max_tick,
          hist, prog_seen, chunk_notes, name_span, first_on, info,
          n_tick, n_pitch, n_vel, c_tick, c_num, c_val, t_tick, t_val, s_tick, s_val, counts):
    """Walk every MTrk chunk ``data[starts[c]:ends[c]]`` (events with tick < ``max_tick``).

    Census (always): ``hist`` (16, 128) note-on counts, ``prog_seen`` (16, 128), ``chunk_notes``
    (n_chunks, 16), ``name_span`` (n_chunks, 2) first track-name offset/length, ``first_on`` (16,)
    first note-on tick. ``info`` = [error code, error chunk, last tick, chunks without end-of-track].
    Extraction for ``channel`` (>= 0): notes (tick, pitch, velocity; 0 = off) and CCs with
    ``ccmask[number]``; tempos (tick, us per quarter) and time signatures (tick, num*256+den);
    ``counts`` = [notes, ccs, tempos, signatures] is the full count even where arrays are too short.
    """
    for c in range(len(starts)):
        p = starts[c]
        end = ends[c]
        tick = 0
        status = 0
        eot = False
        while p < end:
            delta, p = _vlq(data, p, end)
            if p < 0:
                info[0] = 1 if p == -1 else 2
                info[1] = c
                return
            tick += delta
            if tick >= max_tick:
                eot = True
                break
            if p >= end:
                info[0] = 1
                info[1] = c
                return
            b = data[p]
            if b >= 0x80:
                p += 1
                if b < 0xF0:
                    status = b
            elif status == 0:  # running status with nothing to run on
                info[0] = 2
                info[1] = c
                return
            else:
                b = status
            if b == 0xFF:  # meta event
                if p >= end:
                    info[0] = 1
                    info[1] = c
                    return
                mtype = data[p]
                length, p = _vlq(data, p + 1, end)
                if p < 0 or p + length > end:
                    info[0] = 2 if p == -2 else 1
                    info[1] = c
                    return
                if mtype == 0x2F:
                    eot = True
                    break
                if mtype == 0x03 and name_span[c, 1] < 0:
                    name_span[c, 0] = p
                    name_span[c, 1] = length
                elif mtype == 0x51 and length == 3:
                    k = counts[2]
                    if k < len(t_tick):
                        t_tick[k] = tick
                        t_val[k] = (data[p] << 16) | (data[p + 1] << 8) | data[p + 2]
                    counts[2] = k + 1
                elif mtype == 0x58 and length >= 2:
                    k = counts[3]
                    if k < len(s_tick):
                        s_tick[k] = tick
                        s_val[k] = data[p] * 256 + min(data[p + 1], 15)
                    counts[3] = k + 1
                p += length
            elif b == 0xF0 or b == 0xF7:  # sysex / escape: skip the payload
                length, p = _vlq(data, p, end)
                if p < 0 or p + length > end:
                    info[0] = 2 if p == -2 else 1
                    info[1] = c
                    return
                p += length
            elif b >= 0xF0:  # system common / real-time bytes are not allowed in a file
                info[0] = 2
                info[1] = c
                return
            else:  # channel voice message
                kind = b & 0xF0
                ch = b & 0x0F
                nd = 1 if kind == 0xC0 or kind == 0xD0 else 2
                if p + nd > end:
                    info[0] = 1
                    info[1] = c
                    return
                d1 = data[p]
                d2 = data[p + 1] if nd == 2 else 0
                if d1 >= 0x80 or d2 >= 0x80:
                    info[0] = 2
                    info[1] = c
                    return
                p += nd
                if kind == 0x90 or kind == 0x80:
                    vel = d2 if kind == 0x90 else 0
                    if vel > 0:
                        hist[ch, d1] += 1
                        chunk_notes[c, ch] += 1
                        if first_on[ch] < 0 or tick < first_on[ch]:
                            first_on[ch] = tick
                    if ch == channel:
                        k = counts[0]
                        if k < len(n_tick):
                            n_tick[k] = tick
                            n_pitch[k] = d1
                            n_vel[k] = vel
                        counts[0] = k + 1
                elif kind == 0xC0:
                    prog_seen[ch, d1] = 1
                elif kind == 0xB0 and ch == channel and ccmask[d1]:
                    k = counts[1]
                    if k < len(c_tick):
                        c_tick[k] = tick
                        c_num[k] = d1
                        c_val[k] = d2
                    counts[1] = k + 1
        if tick > info[2]:
            info[2] = tick
        if not eot:
            info[3] += 1  # tolerated: many real files end a track without the meta event


@njit(cache=True, nogil=True)
def _pair_notes(ticks, pitches, vels, end_tick):
    """Note events in time order -> (n, 4) int64 rows [on tick, end tick, pitch, velocity].

    A note-off closes the sounding note of its pitch (unmatched offs are ignored), a note-on of a
    sounding pitch ends it first, notes still open end at ``end_tick``."""
    n_on = 0
    for i in range(len(vels)):
        if vels[i] > 0:
            n_on += 1
    out = np.empty((n_on, 4), np.int64)
    open_row = np.full(128, -1, np.int64)
    k = 0
    for i in range(len(ticks)):
        pitch = pitches[i]
        r = open_row[pitch]
        if r >= 0:
            out[r, 1] = ticks[i]
            open_row[pitch] = -1
        if vels[i] > 0:
            out[k, 0] = ticks[i]
            out[k, 1] = end_tick
            out[k, 2] = pitch
            out[k, 3] = vels[i]
            open_row[pitch] = k
            k += 1
    return out


def _scan(data, starts, ends, channel=-1, ccmask=None, max_tick=2 ** 62, cap=(0, 0, 0, 0)):
    """Run ``_walk`` with fresh output arrays of capacity ``cap`` (notes, ccs, tempos, signatures)."""
    n = len(starts)
    out = dict(hist=np.zeros((16, 128), np.int64), prog_seen=np.zeros((16, 128), np.uint8),
               chunk_notes=np.zeros((n, 16), np.int64), name_span=np.full((n, 2), -1, np.int64),
               first_on=np.full(16, -1, np.int64), info=np.zeros(4, np.int64),
               n_tick=np.empty(cap[0], np.int64), n_pitch=np.empty(cap[0], np.uint8), n_vel=np.empty(cap[0], np.uint8),
               c_tick=np.empty(cap[1], np.int64), c_num=np.empty(cap[1], np.uint8), c_val=np.empty(cap[1], np.uint8),
               t_tick=np.empty(cap[2], np.int64), t_val=np.empty(cap[2], np.int64),
               s_tick=np.empty(cap[3], np.int64), s_val=np.empty(cap[3], np.int64), counts=np.zeros(4, np.int64))
    mask = np.zeros(128, np.bool_) if ccmask is None else ccmask
    _walk(data, starts, ends, channel, mask, max_tick, *out.values())
    return out


# ---------------------------------------------------------------------------- container
def _chunks(data: bytes):
    """(tpq, smpte, starts, ends) of the MTrk chunks; raises MidiReadError on a bad container."""
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
        if not re.fullmatch(rb"[\x20-\x7e]{4}", ctype):
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


def _is_bass_name(name: str) -> bool:
    name = name.lower()
    return "bass" in name and "bassoon" not in name and "drum" not in name


def _choose_bass(census, data) -> int:
    """Channel index of the bass part (see module doc), -1 if none."""
    counts = census["hist"].sum(axis=1)
    counts[DRUM_CHANNEL] = 0
    if counts.max() == 0:
        return -1
    named = np.zeros(16, bool)
    for c in np.nonzero(census["name_span"][:, 1] >= 0)[0]:
        off, length = census["name_span"][c]
        if _is_bass_name(bytes(data[off:off + length]).decode("latin-1")):
            named |= census["chunk_notes"][c] > 0
    gm_bass = census["prog_seen"][:, GM_BASS].any(axis=1)
    cands = np.nonzero(counts >= max(1, 0.1 * counts.max()))[0]
    cum = np.cumsum(census["hist"][cands], axis=1)
    median = np.argmax(cum >= cum[:, -1:] / 2.0, axis=1)
    hinted = (gm_bass | named)[cands]
    order = np.lexsort((median, ~hinted))  # hinted first, then lowest median pitch
    best = int(cands[order[0]])
    if not hinted.any():  # a small hinted channel below the 10% bar still beats pitch alone
        small = np.nonzero((gm_bass | named) & (counts > 0))[0]
        if len(small):
            best = int(small[np.argmax(counts[small])])
    return best


# ---------------------------------------------------------------------------- reading
def read_midi(path, n_bars: int = 4, steps_per_bar: int = 32, cc_numbers=DEFAULT_CC_NUMBERS, *,
              max_windows: int = MAX_WINDOWS, max_bytes: int = MAX_BYTES, max_events: int = MAX_EVENTS,
              require_4_4: bool = False) -> list[Performance]:
    """The bass windows of a MIDI file: ``list[Performance]`` of ``n_bars * steps_per_bar`` steps.

    Raises only ``MidiReadError`` (``.reason`` as in the module doc), never anything else."""
    try:
        return _read(Path(path), n_bars, steps_per_bar, tuple(int(c) for c in cc_numbers),
                     max_windows, max_bytes, max_events, require_4_4)
    except MidiReadError as e:
        e.path = e.path or str(path)
        raise
    except MemoryError as e:
        raise MidiReadError("too_large", "out of memory", str(path)) from e
    except OSError as e:
        raise MidiReadError("unreadable", type(e).__name__, str(path)) from e
    except Exception as e:  # a bug or a parser corner case must not stop a curation run
        raise MidiReadError("parse_error", f"{type(e).__name__}: {e}", str(path)) from e


def _read(path, n_bars, steps_per_bar, cc_numbers, max_windows, max_bytes, max_events, require_4_4):
    size = path.stat().st_size
    if size > max_bytes:
        raise MidiReadError("too_large", f"{size} bytes > {max_bytes}")
    data, tpq, smpte, starts, ends = _chunks(path.read_bytes())
    census = _scan(data, starts, ends)
    if census["info"][0]:
        raise MidiReadError(_ERRORS[int(census["info"][0])], f"in track {int(census['info'][1])}")
    if census["hist"].sum() == 0:
        raise MidiReadError("no_notes")
    channel = _choose_bass(census, data)
    if channel < 0:
        raise MidiReadError("no_bass", "only drum notes")

    n_steps = n_bars * steps_per_bar
    tps = tpq * 4.0 / steps_per_bar  # ticks per grid step (may be fractional)
    w0 = int(np.rint(census["first_on"][channel] / tps)) // n_steps
    max_tick = int(np.ceil((w0 + max_windows) * n_steps * tps))
    ccmask = np.zeros(128, np.bool_)
    ccmask[[c for c in cc_numbers if 0 <= c < 128]] = True
    counted = _scan(data, starts, ends, channel, ccmask, max_tick)["counts"]
    if counted[:2].max() > max_events or counted[2:].max() > max_events:
        raise MidiReadError("too_dense", f"{int(counted[:2].sum())} events in {max_windows} windows")
    ev = _scan(data, starts, ends, channel, ccmask, max_tick, cap=tuple(int(k) for k in counted))

    order = np.argsort(ev["n_tick"], kind="stable")  # file order (track-major) within a tick
    notes = _pair_notes(ev["n_tick"][order], ev["n_pitch"][order], ev["n_vel"][order],
                        min(int(census["info"][2]), max_tick))
    on = np.rint(notes[:, 0] / tps).astype(np.int64)
    dur = np.maximum(np.rint(notes[:, 1] / tps).astype(np.int64) - on, 1)
    win = on // n_steps
    windows = np.unique(win[(win >= w0) & (win < w0 + max_windows)])

    order = np.argsort(ev["t_tick"], kind="stable")
    t_tick, t_val = ev["t_tick"][order], ev["t_val"][order]
    t_tick, t_val = t_tick[t_val > 0], t_val[t_val > 0]  # a zero tempo is meaningless: ignored
    if require_4_4:
        order = np.argsort(ev["s_tick"], kind="stable")
        s_tick, s_val = ev["s_tick"][order], ev["s_val"][order]
        windows = np.array([w for w in windows if _is_4_4(s_tick, s_val, w * n_steps * tps,
                                                            (w + 1) * n_steps * tps)], np.int64)
    if len(windows) == 0:
        raise MidiReadError("not_4_4" if require_4_4 else "no_notes", "no window holds a bass note")

    span = (int(w0) * n_steps, int(windows[-1] + 1) * n_steps)
    grid = _cc_grid(ev, tps, cc_numbers, span)
    rows = _window_notes(np.stack([on, dur, notes[:, 2], notes[:, 3]], axis=1), win, windows, n_steps)
    out = []
    for w, r in zip(windows.tolist(), rows):
        k = np.searchsorted(t_tick, w * n_steps * tps, side="right")
        bpm = 120.0 if smpte or k == 0 else 60e6 / float(t_val[k - 1])
        lo = w * n_steps - span[0]
        out.append(Performance(r, grid[:, lo:lo + n_steps].copy(), cc_numbers, tempo_bpm=bpm,
                               steps_per_bar=steps_per_bar, style="", source=str(path)))
    return out


def _cc_grid(ev, tps, cc_numbers, span) -> np.ndarray:
    """(n_cc, span steps) int16 sample-and-hold lanes over ``span`` = [first, end) global steps.

    CCs before the span land on its first step (so each window's first column is the state carried
    into it, ``initial_cc``); the CC written last (time, then file order) wins within a step."""
    lane_of = np.full(128, -1, np.int64)
    for i, c in enumerate(cc_numbers):
        if 0 <= c < 128 and lane_of[c] < 0:
            lane_of[c] = i
    order = np.argsort(ev["c_tick"], kind="stable")
    step = np.maximum(np.rint(ev["c_tick"][order] / tps).astype(np.int64), span[0]) - span[0]
    lane = lane_of[ev["c_num"][order]]
    val = ev["c_val"][order].astype(np.int16)
    ok = (step < span[1] - span[0]) & (lane >= 0)
    step, lane, val = step[ok], lane[ok], val[ok]
    width = span[1] - span[0]
    key = lane * width + step
    last = len(key) - 1 - np.unique(key[::-1], return_index=True)[1]  # last write per (lane, step)
    grid = np.full((len(cc_numbers), width), -1, np.int16)
    grid[lane[last], step[last]] = val[last]
    return ffill_lanes(grid)


def _window_notes(n, win, windows, n_steps) -> list[np.ndarray]:
    """Global-step note rows (onset, duration, pitch, velocity) -> per-window rows with the
    ``Performance.normalized`` invariants: clipped to the window, duration >= 1, of notes with the
    same onset and pitch the last one kept, a note ends where the next of its pitch starts, sorted
    by (onset, pitch). Done for all windows at once (per-window numpy calls dominated the time)."""
    keep = np.isin(win, windows)
    n, w = n[keep], win[keep]
    o = n[:, 0] - w * n_steps
    d = np.clip(n[:, 1], 1, n_steps - o)
    p, v = n[:, 2], np.clip(n[:, 3], 1, 127)
    idx = np.lexsort((np.arange(len(o)), o, p, w))  # time order is the input order
    same = (w[idx][1:] == w[idx][:-1]) & (p[idx][1:] == p[idx][:-1])
    dup = same & (o[idx][1:] == o[idx][:-1])
    idx = idx[np.append(~dup, True)]  # of a same-onset same-pitch group keep the last (its re-attack)
    same = (w[idx][1:] == w[idx][:-1]) & (p[idx][1:] == p[idx][:-1])
    end = o[idx] + d[idx]
    end[:-1] = np.where(same, np.minimum(end[:-1], o[idx][1:]), end[:-1])
    d[idx] = end - o[idx]
    idx = idx[np.lexsort((p[idx], o[idx], w[idx]))]
    rows = np.stack([o[idx], d[idx], p[idx], v[idx]], axis=1).astype(np.int32)
    bounds = np.searchsorted(w[idx], windows, side="left")
    return np.split(rows, bounds[1:])


def _is_4_4(s_tick, s_val, lo_tick, hi_tick) -> bool:
    """Whether every time signature in force over [lo_tick, hi_tick) is 4/4 (none = 4/4)."""
    k = np.searchsorted(s_tick, lo_tick, side="right")
    inside = s_val[(s_tick > lo_tick) & (s_tick < hi_tick)]
    first = s_val[k - 1] if k > 0 else 4 * 256 + 2
    return bool(first == 4 * 256 + 2 and np.all(inside == 4 * 256 + 2))


# ---------------------------------------------------------------------------- writing
def write_midi(perf: Performance, path) -> Path:
    """Write ``perf`` as a type-0 MIDI file (channel 1, program 38) with tempo, 4/4, the CC state
    at step 0 and every later CC change; atomically (temporary file, fsync, rename). Within a
    step the order is note-offs, CCs, note-ons, as in the tokenizer."""
    import mido

    path = Path(path)
    tps = WRITE_TICKS_PER_STEP  # integer ticks per step; a quarter note is steps_per_bar / 4 steps
    tpq = tps * perf.steps_per_bar // 4
    events = []  # (tick, order within the tick, message)
    for on, dur, pitch, vel in perf.notes.tolist():
        events.append((on * tps, 2, mido.Message("note_on", note=pitch, velocity=vel, channel=0)))
        events.append(((on + dur) * tps, 0, mido.Message("note_off", note=pitch, velocity=0, channel=0)))
    changes = perf.cc_changes()
    for lane, t in zip(*np.nonzero(changes)):
        events.append((int(t) * tps, 1, mido.Message("control_change", control=perf.cc_numbers[lane],
                                                     value=int(perf.cc[lane, t]), channel=0)))
    events.sort(key=lambda e: (e[0], e[1]))  # stable: lanes stay in cc_numbers order
    track = mido.MidiTrack([
        mido.MetaMessage("track_name", name="bass", time=0),
        mido.MetaMessage("set_tempo", tempo=int(round(mido.bpm2tempo(perf.tempo_bpm))), time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        mido.Message("program_change", program=WRITE_PROGRAM, channel=0, time=0)])
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, perf.n_steps * tps - now)))
    mf = mido.MidiFile(type=0, ticks_per_beat=tpq, tracks=[track])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            mf.save(file=f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ---------------------------------------------------------------------------- names
def safe_name(path_or_str, max_len: int = 48) -> str:
    """A file-system-safe output name for a MIDI path: ``<clean stem>-<10 hex of sha1(full path)>``.

    Only ``[A-Za-z0-9._-]`` survive (no separators, no ``..``, no leading dot or dash); the hash of
    the full original string keeps ``a/x.mid`` and ``b/x.mid`` (or ``x?.mid`` and ``x*.mid``) apart."""
    raw = os.fspath(path_or_str) if isinstance(path_or_str, os.PathLike) else str(path_or_str)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "surrogateescape")
    digest = hashlib.sha1(raw.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    base = re.split(r"[\\/]", raw)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem.replace(".", "_")).strip("_-")[:max_len].strip("_-")
    return f"{stem or 'midi'}-{digest}"
