"""Standard MIDI File scanning: one compiled call over the track bytes.

``vaelib.data.smf_container.chunks`` checks the container and finds the ``MTrk`` chunks first.
``scan_bass`` (numba) then walks every ``MTrk``: it validates the events
(running status, data bytes > 127, events overrunning their chunk), takes a census per channel
(pitch histogram, programs, which chunks hold its notes, first note tick), picks the bass channel
(policy in ``vaelib.data.midi``'s module doc, point 4), and with two more walks counts, then fills
exact-size arrays of that channel's notes and monitored CCs and the tempo/time-signature maps,
only up to the last window ``vaelib.data.midi`` may return.

Why not symusic: symusic 0.6 is fast, but its ``Track`` has no channel, it splits a channel by
program, orders tracks by an undocumented key and drops every note-less channel, so "merge the
tracks of one channel and keep the CC-only track of the bass channel" cannot be done from its
output. Walking the raw events once gives channel identity for free and is about as fast.

Every compiled function that ``scan_bass`` calls lives in this file: numba's on-disk cache
(``cache=True``, in ``__pycache__``) is invalidated only when the calling function's own file
changes, not when a callee in another file does.
"""
from __future__ import annotations

import numpy as np
from numba import njit

DRUM_CHANNEL = 9
GM_BASS = np.arange(32, 40)
STATUS = {1: "bad_chunk", 2: "bad_event", 3: "no_notes", 4: "no_bass", 5: "too_dense", 6: "not_4_4"}
_BASS, _BASSOON, _DRUM = (np.frombuffer(w, np.uint8).copy() for w in (b"bass", b"bassoon", b"drum"))


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
def _contains(data, off, n, word):
    """Case-insensitive ASCII search of ``word`` (lower-case bytes) in ``data[off:off+n]``."""
    for i in range(off, off + n - len(word) + 1):
        hit = True
        for j in range(len(word)):
            b = data[i + j]
            if 65 <= b <= 90:
                b += 32
            if b != word[j]:
                hit = False
                break
        if hit:
            return True
    return False


@njit(cache=True, nogil=True)
def _choose_bass(data, hist, prog_seen, chunk_notes, name_span):
    """Channel of the bass part (``vaelib.data.midi``'s module doc, point 4), -1 if there is none."""
    counts = np.zeros(16, np.int64)  # plain loops: numba's axis reductions cost microseconds here
    hinted = np.zeros(16, np.bool_)
    for ch in range(16):
        if ch != DRUM_CHANNEL:
            for p in range(128):
                counts[ch] += hist[ch, p]
        for p in GM_BASS:
            hinted[ch] |= prog_seen[ch, p] > 0
    top = counts.max()
    if top == 0:
        return -1
    for c in range(len(name_span)):
        off, n = name_span[c, 0], name_span[c, 1]
        if n > 0 and _contains(data, off, n, _BASS) and not _contains(data, off, n, _BASSOON) \
                and not _contains(data, off, n, _DRUM):
            for ch in range(16):
                hinted[ch] |= chunk_notes[c, ch] > 0
    best, best_hint, best_median = -1, False, 999
    for ch in range(16):
        if counts[ch] < max(1.0, 0.1 * top):
            continue
        half, acc, median = counts[ch] / 2.0, 0, 0
        for p in range(128):
            acc += hist[ch, p]
            if acc >= half:
                median = p
                break
        if best < 0 or (hinted[ch] and not best_hint) or (hinted[ch] == best_hint and median < best_median):
            best, best_hint, best_median = ch, hinted[ch], median
    if not best_hint:  # a small hinted channel below the 10% bar still beats pitch alone
        for ch in range(16):
            if hinted[ch] and counts[ch] > 0 and (not best_hint or counts[ch] > counts[best]):
                best, best_hint = ch, True
    return best



@njit(cache=True, nogil=True)
def scan_bass(data, starts, ends, tps, n_steps, lane_of, max_windows, max_events):
    """Validate the tracks, pick the bass channel and extract its events up to the last window.

    ``data`` (n_bytes,) uint8, ``starts``/``ends`` (n_chunks,) MTrk byte ranges, ``tps`` ticks per
    grid step, ``lane_of`` (128,) lane of each CC number (-1 = not monitored). Returns (status, w0
    = index of the window holding the first bass note, end_tick = where notes still sounding end,
    notes (tick, pitch, velocity; 0 = off), CCs (tick, number, value), tempos (tick, us per
    quarter), time signatures (tick, num*256+den)), each event array in walk order.
    status: 0 ok, 1 bad_chunk, 2 bad_event, 3 no_notes, 4 no_bass, 5 too_dense."""
    ccmask = lane_of >= 0
    n = len(starts)
    hist, prog_seen = np.zeros((16, 128), np.int64), np.zeros((16, 128), np.uint8)
    chunk_notes, name_span = np.zeros((n, 16), np.int64), np.full((n, 2), -1, np.int64)
    first_on, info, cnt = np.full(16, -1, np.int64), np.zeros(4, np.int64), np.zeros(4, np.int64)
    e8, e64 = np.empty(0, np.uint8), np.empty(0, np.int64)
    _walk(data, starts, ends, -1, ccmask, 2 ** 62, hist, prog_seen, chunk_notes, name_span, first_on, info,
          e64, e8, e8, e64, e8, e8, e64, e64, e64, e64, cnt)
    if info[0] != 0:
        return info[0], 0, 0, e64, e8, e8, e64, e8, e8, e64, e64, e64, e64
    if hist.sum() == 0:
        return 3, 0, 0, e64, e8, e8, e64, e8, e8, e64, e64, e64, e64
    ch = _choose_bass(data, hist, prog_seen, chunk_notes, name_span)
    if ch < 0:
        return 4, 0, 0, e64, e8, e8, e64, e8, e8, e64, e64, e64, e64
    w0 = np.int64(np.rint(first_on[ch] / tps)) // n_steps
    max_tick = np.int64(np.ceil((w0 + max_windows) * n_steps * tps))
    end_tick = min(info[2], max_tick)  # where notes still sounding end
    # count the channel's events up to max_tick, then fill exact-size arrays (the census arrays
    # are passed again only to avoid allocations: they are not read after this point)
    cnt[:] = 0
    _walk(data, starts, ends, ch, ccmask, max_tick, hist, prog_seen, chunk_notes, name_span,
          first_on, info, e64, e8, e8, e64, e8, e8, e64, e64, e64, e64, cnt)
    if max(cnt[0], cnt[1]) > max_events or max(cnt[2], cnt[3]) > max_events:
        return 5, 0, 0, e64, e8, e8, e64, e8, e8, e64, e64, e64, e64
    n_tick, n_pitch, n_vel = np.empty(cnt[0], np.int64), np.empty(cnt[0], np.uint8), np.empty(cnt[0], np.uint8)
    c_tick, c_num, c_val = np.empty(cnt[1], np.int64), np.empty(cnt[1], np.uint8), np.empty(cnt[1], np.uint8)
    t_tick, t_val = np.empty(cnt[2], np.int64), np.empty(cnt[2], np.int64)
    s_tick, s_val = np.empty(cnt[3], np.int64), np.empty(cnt[3], np.int64)
    cnt[:] = 0
    _walk(data, starts, ends, ch, ccmask, max_tick, hist, prog_seen, chunk_notes, name_span,
          first_on, info, n_tick, n_pitch, n_vel, c_tick, c_num, c_val, t_tick, t_val, s_tick, s_val, cnt)
    return 0, w0, end_tick, n_tick, n_pitch, n_vel, c_tick, c_num, c_val, t_tick, t_val, s_tick, s_val


@njit(cache=True, nogil=True)
def cc_census(data, starts, ends, window_ticks, max_windows):
    """CC motion per channel over the whole file, for the curation census.

    Walks every MTrk (validated by ``scan_bass`` before) and returns ``changes`` (16, 128): CC events that
    change their (channel, number)'s value (the first value of a lane is a setting, not a change), and
    ``windows`` (16, 128): how many ``window_ticks`` spans from tick 0 hold at least one change (spans past
    ``max_windows`` count as the last). The bass channel is picked with the same policy as ``scan_bass``
    (returned third, -1 if none); ``other_windows`` (128,), returned fourth, counts the spans in which the
    number moves on any channel but the bass. Tracks are walked one after another, so a lane split over tracks is compared
    within each track."""
    n = len(starts)
    hist, prog_seen = np.zeros((16, 128), np.int64), np.zeros((16, 128), np.uint8)
    chunk_notes, name_span = np.zeros((n, 16), np.int64), np.full((n, 2), -1, np.int64)
    first_on, info, cnt = np.full(16, -1, np.int64), np.zeros(4, np.int64), np.zeros(4, np.int64)
    e8, e64 = np.empty(0, np.uint8), np.empty(0, np.int64)
    changes = np.zeros((16, 128), np.int64)
    windows = np.zeros((16, 128), np.int64)
    _walk(data, starts, ends, -1, np.zeros(128, np.bool_), 2 ** 62, hist, prog_seen, chunk_notes, name_span,
          first_on, info, e64, e8, e8, e64, e8, e8, e64, e64, e64, e64, cnt)
    other = np.zeros(128, np.int64)
    if info[0] != 0:
        return changes, windows, -1, other
    bass = _choose_bass(data, hist, prog_seen, chunk_notes, name_span) if hist.sum() > 0 else -1
    moved = np.zeros((16, 128, max_windows), np.bool_)
    for c in range(n):
        p, end, tick, status = starts[c], ends[c], 0, 0
        last = np.full((16, 128), -1, np.int64)
        while p < end:
            delta, p = _vlq(data, p, end)
            if p < 0 or p >= end:
                break
            tick += delta
            b = data[p]
            if b >= 0x80:
                p += 1
                if b < 0xF0:
                    status = b
            else:
                b = status
            if b == 0xFF:
                length, p = _vlq(data, p + 1, end)
                if p < 0:
                    break
                p += length
            elif b == 0xF0 or b == 0xF7:
                length, p = _vlq(data, p, end)
                if p < 0:
                    break
                p += length
            elif b >= 0xF0 or b < 0x80:
                break
            else:
                kind, ch = b & 0xF0, b & 0x0F
                nd = 1 if kind == 0xC0 or kind == 0xD0 else 2
                if p + nd > end:
                    break
                if kind == 0xB0:
                    num, val = data[p], data[p + 1]
                    if last[ch, num] >= 0 and last[ch, num] != val:
                        changes[ch, num] += 1
                        moved[ch, num, min(tick // window_ticks, max_windows - 1)] = True
                    last[ch, num] = val
                p += nd
    for num in range(128):
        for w in range(max_windows):
            any_other = False
            for ch in range(16):
                if moved[ch, num, w]:
                    windows[ch, num] += 1
                    any_other |= ch != bass
            other[num] += any_other
    return changes, windows, bass, other
