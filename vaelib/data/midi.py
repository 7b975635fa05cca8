"""MIDI files -> ``Performance`` windows: bass-part reading with every CC.

Reading (``read_midi``)
-----------------------
1. **Container checks** (``vaelib.data.smf_container.chunks``, Python, O(number of chunks)): size cap
   (``too_large``), empty file, ``MThd`` header, chunk walk.
2. **Two compiled calls** return plain arrays: ``vaelib.data.smf.scan_bass`` (numba) validates every
   ``MTrk``, takes a per-channel census, picks the bass channel and extracts its notes, monitored
   CCs and the tempo/time-signature maps up to the last window that may be returned;
   ``_window_core`` (numba, here) pairs, quantises and cuts them into windows and CC lanes. ~30 us
   for a small file, ~50 ms for an hour of dense CCs. The first call compiles (~10 s CPU), later
   processes load the cache from ``__pycache__``.
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

Writing is ``vaelib.data.midi_write``.
"""
from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
from numba import njit

from vaelib.controllers import DEFAULT_CC_NUMBERS
from vaelib.data.performance import Performance
from vaelib.data.smf import DRUM_CHANNEL, GM_BASS  # noqa: F401  (re-exported, public here)
from vaelib.data.smf import STATUS, cc_census, scan_bass
from vaelib.data.smf_container import MidiReadError, chunks  # noqa: F401  (MidiReadError re-exported, public here)

MAX_BYTES = 32 << 20  # files above this are rejected as "too_large"
MAX_WINDOWS = 64  # windows per file: bounds time and memory on hour-long files
MAX_EVENTS = 1_000_000  # bass-channel events in the windows' span; above: "too_dense"


# ---------------------------------------------------------------------------- windowing
@njit(cache=True, nogil=True)
def _stable_order(keys):
    """Stable argsort; the events of one track come sorted, so check that first (it is ~20x cheaper)."""
    for i in range(1, len(keys)):
        if keys[i] < keys[i - 1]:
            return np.argsort(keys, kind="mergesort")
    return np.arange(len(keys))


@njit(cache=True, nogil=True)
def _window_core(w0, end_tick, n_tick, n_pitch, n_vel, c_tick, c_num, c_val, t_tick, t_val, s_tick, s_val,
                 tps, n_steps, lane_of, n_cc, max_windows, require_4_4):
    """``smf.scan_bass``'s events -> windows, in one compiled call (pairing, quantisation, lanes).

    Returns (status, windows (k,), tempo us/quarter per window (k,), note rows (n, 4) int32 sorted
    by window then (onset, pitch), row offsets (k + 1,), CC lanes (k, n_cc, n_steps) int16).
    status: 0 ok, 3 no_notes, 6 not_4_4."""
    no_w, no_t = np.zeros(0, np.int64), np.zeros(0, np.int64)
    no_rows, no_off, no_cc = np.zeros((0, 4), np.int32), np.zeros(1, np.int64), np.zeros((0, n_cc, n_steps), np.int16)
    # notes: pair in time order (file order within a tick), round onsets and ends to the grid
    order = _stable_order(n_tick)
    n_on = 0
    for i in range(len(n_vel)):
        n_on += n_vel[i] > 0
    on = np.empty(n_on, np.int64)
    off = np.empty(n_on, np.int64)
    pitch = np.empty(n_on, np.int64)
    vel = np.empty(n_on, np.int64)
    sounding = np.full(128, -1, np.int64)
    k = 0
    for i in order:
        p = n_pitch[i]
        if sounding[p] >= 0:  # a note-off, or a re-attack of a sounding pitch, ends the note
            off[sounding[p]] = n_tick[i]
            sounding[p] = -1
        if n_vel[i] > 0:
            on[k], off[k], pitch[k], vel[k] = n_tick[i], end_tick, p, n_vel[i]
            sounding[p] = k
            k += 1
    step = np.empty(n_on, np.int64)
    dur = np.empty(n_on, np.int64)
    for i in range(n_on):
        step[i] = np.int64(np.rint(on[i] / tps))
        dur[i] = max(np.int64(np.rint(off[i] / tps)) - step[i], 1)

    # windows: those holding a note onset, from the first bass note's, at most max_windows
    s_order = _stable_order(s_tick)
    has = np.zeros(max_windows, np.bool_)
    for i in range(n_on):
        w = step[i] // n_steps - w0
        if 0 <= w < max_windows:
            has[w] = True
    if require_4_4:  # every signature in force over the window must be 4/4 (none given = 4/4)
        for w in range(max_windows):
            lo, hi = (w0 + w) * n_steps * tps, (w0 + w + 1) * n_steps * tps
            at_lo, inside_ok = 4 * 256 + 2, True
            for i in s_order:
                if s_tick[i] <= lo:
                    at_lo = s_val[i]
                elif s_tick[i] < hi:
                    inside_ok &= s_val[i] == 4 * 256 + 2
            has[w] &= inside_ok and at_lo == 4 * 256 + 2
    index = np.full(max_windows, -1, np.int64)
    n_win = 0
    for w in range(max_windows):
        if has[w]:
            index[w] = n_win
            n_win += 1
    if n_win == 0:
        return 6 if require_4_4 else 3, no_w, no_t, no_rows, no_off, no_cc
    windows = np.empty(n_win, np.int64)
    for w in range(max_windows):
        if index[w] >= 0:
            windows[index[w]] = w0 + w

    # note rows per window with the Performance.normalized invariants: clipped to the window, of
    # same-onset same-pitch notes the last kept, a note ends where the next of its pitch starts
    keep = np.zeros(n_on, np.bool_)
    last = np.full(128, -1, np.int64)
    for i in range(n_on):  # onsets are in time order
        w = step[i] // n_steps - w0
        if w < 0 or w >= max_windows or index[w] < 0:
            continue
        o = step[i] - (w0 + w) * n_steps
        dur[i] = min(dur[i], n_steps - o)
        j = last[pitch[i]]
        if j >= 0 and step[j] // n_steps == step[i] // n_steps:
            if step[j] == step[i]:
                keep[j] = False
            else:
                dur[j] = min(dur[j], step[i] - step[j])
        last[pitch[i]] = i
        keep[i] = True
    sel = np.nonzero(keep)[0]
    key = np.empty(len(sel), np.int64)
    for k in range(len(sel)):
        key[k] = step[sel[k]] * 128 + pitch[sel[k]]
    sel = sel[_stable_order(key)]
    rows = np.empty((len(sel), 4), np.int32)
    offsets = np.zeros(n_win + 1, np.int64)
    for k in range(len(sel)):
        i = sel[k]
        w = step[i] // n_steps
        rows[k, 0], rows[k, 1] = step[i] - w * n_steps, dur[i]
        rows[k, 2], rows[k, 3] = pitch[i], min(max(vel[i], 1), 127)
        offsets[index[w - w0] + 1] += 1
    offsets = np.cumsum(offsets)

    # CC lanes: state carried into each window, last write within a step wins, sample and hold
    order = _stable_order(c_tick)
    grid = np.full((n_win, n_cc, n_steps), -2, np.int16)
    state = np.full(n_cc, -1, np.int16)
    k = 0
    for wi in range(n_win):
        lo = windows[wi] * n_steps
        while k < len(order):
            i = order[k]
            s = np.int64(np.rint(c_tick[i] / tps))
            if s >= lo:
                break
            state[lane_of[c_num[i]]] = c_val[i]
            k += 1
        carried = state.copy()  # the state at the window start, before its own events
        j = k
        while j < len(order):
            i = order[j]
            s = np.int64(np.rint(c_tick[i] / tps))
            if s >= lo + n_steps:
                break
            grid[wi, lane_of[c_num[i]], s - lo] = c_val[i]
            state[lane_of[c_num[i]]] = c_val[i]
            j += 1
        k = j
        for lane in range(n_cc):
            if grid[wi, lane, 0] == -2:
                grid[wi, lane, 0] = carried[lane]
            for t in range(1, n_steps):
                if grid[wi, lane, t] == -2:
                    grid[wi, lane, t] = grid[wi, lane, t - 1]

    # tempo in force at each window start (a zero tempo is meaningless and ignored)
    tempo = np.full(n_win, 500000, np.int64)
    order = _stable_order(t_tick)
    current, k = 500000, 0
    for wi in range(n_win):
        lo = windows[wi] * n_steps * tps
        while k < len(order) and t_tick[order[k]] <= lo:
            if t_val[order[k]] > 0:
                current = t_val[order[k]]
            k += 1
        tempo[wi] = current
    return 0, windows, tempo, rows, offsets, grid


# ---------------------------------------------------------------------------- reading
def read_midi(path, n_bars: int = 4, steps_per_bar: int = 32, cc_numbers=DEFAULT_CC_NUMBERS, *,
              max_windows: int = MAX_WINDOWS, max_bytes: int = MAX_BYTES, max_events: int = MAX_EVENTS,
              require_4_4: bool = False) -> list[Performance]:
    """The bass windows of a MIDI file: ``list[Performance]`` of ``n_bars * steps_per_bar`` steps.

    Raises only ``MidiReadError`` (``.reason`` as in the module doc), never anything else."""
    try:
        cc_numbers = cc_numbers if cc_numbers is DEFAULT_CC_NUMBERS else tuple(int(c) for c in cc_numbers)
        return _read(path if isinstance(path, Path) else Path(path), n_bars, steps_per_bar, cc_numbers,
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


@functools.lru_cache(maxsize=64)
def _lanes(cc_numbers: tuple[int, ...]) -> np.ndarray:
    """(128,) lane index of each CC number, -1 where not monitored (the first lane wins on repeats)."""
    lane_of = np.full(128, -1, np.int64)
    for i, c in enumerate(cc_numbers):
        if 0 <= c < 128 and lane_of[c] < 0:
            lane_of[c] = i
    lane_of.flags.writeable = False
    return lane_of


def _read(path, n_bars, steps_per_bar, cc_numbers, max_windows, max_bytes, max_events, require_4_4):
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise MidiReadError("too_large", f"{size} bytes > {max_bytes}")
        raw = f.read(size + 1)  # not max_bytes + 1: CPython would allocate that much up front
    if len(raw) > max_bytes:  # grew while we read it
        raise MidiReadError("too_large", f"more than {max_bytes} bytes")
    data, tpq, smpte, starts, ends = chunks(raw)
    n_steps, tps = n_bars * steps_per_bar, tpq * 4.0 / steps_per_bar
    lane_of = _lanes(cc_numbers)
    status, w0, end_tick, *events = scan_bass(data, starts, ends, tps, n_steps, lane_of, int(max_windows),
                                              int(max_events))
    if status:
        raise MidiReadError(STATUS[int(status)])
    status, windows, tempo, rows, offsets, grid = _window_core(
        w0, end_tick, *events, tps, n_steps, lane_of, len(cc_numbers), int(max_windows), bool(require_4_4))
    if status:
        raise MidiReadError(STATUS[int(status)])
    bpm = np.full(len(windows), 120.0) if smpte else 60e6 / tempo
    source = str(path)
    return [Performance(rows[offsets[k]:offsets[k + 1]], grid[k], cc_numbers, tempo_bpm=float(bpm[k]),
                        steps_per_bar=steps_per_bar, style="", source=source) for k in range(len(windows))]


CENSUS_MAX_WINDOWS = 1024  # census spans per file; later ones count as the last


def other_parts_census(path, n_bars: int = 4) -> dict[int, tuple[int, int]]:
    """CC motion on the parts of a MIDI file other than its bass channel: CC number -> (windows in which it
    changes value on any such channel, value changes summed over them). Windows are ``n_bars``-bar spans of
    4/4 from tick 0 over the whole file. Raises ``MidiReadError`` like ``read_midi``."""
    try:
        raw = Path(path).read_bytes()
        data, tpq, _, starts, ends = chunks(raw)
        changes, _, bass, other = cc_census(data, starts, ends, max(1, tpq * 4 * n_bars), CENSUS_MAX_WINDOWS)
    except MidiReadError:
        raise
    except OSError as e:
        raise MidiReadError("unreadable", type(e).__name__, str(path)) from e
    mask = np.ones(16, bool)
    if bass >= 0:
        mask[bass] = False
    total = changes[mask].sum(0)
    return {int(n): (int(other[n]), int(total[n])) for n in np.nonzero(total)[0]}


def select_controllers(perf: Performance, cc_numbers) -> Performance:
    """``perf`` with only the lanes of ``cc_numbers``, in that order (a number ``perf`` lacks is an unset lane).

    Reading with every CC number and selecting afterwards gives exactly what reading with ``cc_numbers`` gives:
    each lane is computed on its own."""
    import dataclasses

    cc_numbers = tuple(int(c) for c in cc_numbers)
    if cc_numbers == perf.cc_numbers:
        return perf
    cc = np.full((len(cc_numbers), perf.n_steps), -1, np.int16)
    for i, c in enumerate(cc_numbers):
        if c in perf.cc_numbers:
            cc[i] = perf.cc[perf.cc_numbers.index(c)]
    return dataclasses.replace(perf, cc=cc, cc_numbers=cc_numbers)


def used_controllers(perfs: list[Performance]) -> list[Performance]:
    """Windows restricted to the CC numbers set in any of them (ascending), e.g. after reading with all 128."""
    used = sorted({c for p in perfs for i, c in enumerate(p.cc_numbers) if (p.cc[i] >= 0).any()})
    return [select_controllers(p, used) for p in perfs]
