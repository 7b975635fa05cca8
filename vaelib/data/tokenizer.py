"""The paper's interleaved event vocabulary (§3.1): encoded by a numba kernel, decoded with numpy.

Vocabulary (1,603 ids for the default 10 controllers)::

    0 PAD, 1 BOS, 2 EOS
    3   .. 34    VELOCITY  x32   (bin b -> velocity 4b+2; precedes every NOTE_ON)
    35  .. 162   NOTE_ON   x128
    163 .. 290   NOTE_OFF  x128
    291 .. 322   TIME_SHIFT 1..32 steps
    323 .. 1602  CC_i      x128 values, lane-major (id = 323 + 128*lane + value)

Event order within one grid step is fixed: NOTE_OFFs (ascending pitch), then CC changes
(ascending lane = order of ``cc_numbers``), then VELOCITY+NOTE_ON pairs (ascending pitch).
A CC is emitted only when its value changes, so step 0 emits the controller snapshot that
opens every window. Gaps longer than ``max_shift`` use several TIME_SHIFTs.
``encode`` works on ``perf.normalized()``; an already normalised performance (an O(n) check)
is used as it is, so the common path is one pass of a compiled kernel.

``decode`` accepts any in-range id sequence: PAD and BOS are ignored, decoding stops at the
first EOS, an unmatched NOTE_OFF is ignored, a NOTE_ON of a sounding pitch ends the old note,
a NOTE_ON without a VELOCITY uses the last velocity seen (at first 66, the centre of 64's bin,
so decode∘encode∘decode = decode), notes still open at the end close at the final time position,
events past the window are dropped, and a sequence with no event (``[]``, all PAD, ``[EOS, ...]``)
gives an empty performance of ``n_steps``.

Over-long windows follow ``TokenizerConfig.thinning``: ``"decimate"`` holds every CC lane for
2, 4, 8, ... steps (sample-and-hold at the block start) until the window fits the budget;
``"reject"`` (or a window that still does not fit) raises ``TokenBudgetError``.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from numba import njit

from vaelib.config import TokenizerConfig
from vaelib.data.performance import Performance, quantize_velocity  # noqa: F401 (public here too)

PAD, BOS, EOS = 0, 1, 2
TYPE_NAMES = ("special", "velocity", "note_on", "note_off", "time_shift", "cc")


class TokenError(ValueError):
    """An id outside the vocabulary."""


class TokenBudgetError(ValueError):
    """A window that does not fit ``max_len`` under the thinning policy."""


class Tokenizer:
    def __init__(self, config: TokenizerConfig | None = None):
        self.config = config or TokenizerConfig()
        c = self.config
        self.n_cc = len(c.cc_numbers)
        self.vel0 = 3
        self.on0 = self.vel0 + c.n_velocity_bins
        self.off0 = self.on0 + 128
        self.shift0 = self.off0 + 128
        self.cc0 = self.shift0 + c.max_shift
        self.vocab_size = self.cc0 + 128 * self.n_cc
        self._layout = np.array([self.vel0, self.on0, self.off0, self.shift0, self.cc0, c.n_velocity_bins,
                                 c.max_shift], np.int64)
        bounds = np.array([self.vel0, self.on0, self.off0, self.shift0, self.cc0, self.vocab_size])
        self._type_of = np.searchsorted(bounds, np.arange(self.vocab_size), side="right").astype(np.int8)

    # ------------------------------------------------------------------ helpers
    def token_types(self, ids) -> np.ndarray:
        """Type code per id: 0 special, 1 velocity, 2 note_on, 3 note_off, 4 time_shift, 5 cc."""
        ids = self._check(ids)
        return self._type_of[ids]

    def describe(self, i: int) -> str:
        i = int(self._check([i])[0])
        t = self._type_of[i]
        if t == 0:
            return ("PAD", "BOS", "EOS")[i]
        if t == 1:
            return f"VELOCITY_{i - self.vel0}"
        if t == 2:
            return f"NOTE_ON_{i - self.on0}"
        if t == 3:
            return f"NOTE_OFF_{i - self.off0}"
        if t == 4:
            return f"TIME_SHIFT_{i - self.shift0 + 1}"
        lane, val = divmod(i - self.cc0, 128)
        return f"CC{self.config.cc_numbers[lane]}_{val}"

    def _check(self, ids) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 1:
            raise TokenError(f"expected a 1-D id sequence, got shape {ids.shape}")
        ids = ids.astype(np.int64, copy=False)
        bad = (ids < 0) | (ids >= self.vocab_size)
        if bad.any():
            j = int(np.argmax(bad))
            raise TokenError(f"token id {int(ids[j])} at position {j} is outside the vocabulary [0, {self.vocab_size})")
        return ids

    # ------------------------------------------------------------------ encode
    def _raw_encode(self, perf: Performance, factor: int = 1) -> np.ndarray:
        """Ids of ``perf.normalized()``, CC lanes held for ``factor`` steps; no budget applied."""
        return self._kernel_encode(_ensure_normalized(perf), factor)

    def _kernel_encode(self, perf: Performance, factor: int = 1) -> np.ndarray:
        """``_raw_encode`` of a performance known to be normalised (the kernel trusts its bounds)."""
        notes = np.ascontiguousarray(perf.notes, dtype=np.int32)
        cc = np.ascontiguousarray(perf.cc, dtype=np.int16)
        n_cc, n_steps = cc.shape
        # every event plus at most one TIME_SHIFT per step and the extra ones of long gaps
        bound = 2 + 3 * len(notes) + n_cc * n_steps + 2 * n_steps + 2
        out = np.empty(bound, np.int64)
        k = _encode_kernel(notes, cc, int(factor), self._layout, out)
        return out[:k].copy()

    def _fit(self, perf: Performance) -> tuple[np.ndarray, int]:
        """(ids, decimation factor) of a normalised performance under the thinning policy."""
        c = self.config
        ids = self._kernel_encode(perf)
        if ids.size <= c.max_len:
            return ids, 1
        if c.thinning != "decimate":
            raise TokenBudgetError(f"window needs more than {c.max_len} tokens and thinning={c.thinning!r}")
        factor = 2
        while factor <= perf.n_steps:
            ids = self._kernel_encode(perf, factor)
            if ids.size <= c.max_len:
                return ids, factor
            factor *= 2
        raise TokenBudgetError(f"window needs more than {c.max_len} tokens even without CC motion "
                               f"({perf.n_notes} notes)")

    def fit_encode(self, perf: Performance) -> tuple[np.ndarray, Performance, int]:
        """One pass of ``fit`` and ``encode``: (ids, the normalised performance that fits, decimation factor)."""
        perf = _ensure_normalized(perf)
        ids, factor = self._fit(perf)
        return ids, _decimate(perf, factor), factor

    def fit(self, perf: Performance) -> tuple[Performance, int]:
        """Apply the thinning policy. Returns the (normalised) performance that fits and its decimation
        factor (1 = untouched: a normalised window that fits comes back as the same object)."""
        return self.fit_encode(perf)[1:]

    def encode(self, perf: Performance) -> np.ndarray:
        """Performance -> int64 ids ``BOS ... EOS`` of length <= ``max_len`` (thinning applied)."""
        if perf.cc_numbers != tuple(self.config.cc_numbers):
            raise ValueError(f"performance monitors {perf.cc_numbers}, tokenizer {self.config.cc_numbers}")
        return self._fit(_ensure_normalized(perf))[0]

    # ------------------------------------------------------------------ decode
    def decode(self, ids, tempo_bpm: float = 140.0) -> Performance:
        """Any id sequence -> a valid Performance of ``n_steps`` (see the module docstring)."""
        c = self.config
        ids = self._check(ids)
        eos = np.nonzero(ids == EOS)[0]
        if len(eos):
            ids = ids[: eos[0]]
        ids = ids[ids > EOS]  # PAD and BOS carry nothing
        typ = self._type_of[ids]
        shift = np.where(typ == 4, ids - self.shift0 + 1, 0)
        step = np.cumsum(shift)
        end_step = int(min(step[-1], c.n_steps)) if len(step) else 0
        pos = np.arange(len(ids))
        # velocity: the last VELOCITY token before each position (the centre of 64's bin before any)
        vpos = np.where(typ == 1, pos, -1)
        np.maximum.accumulate(vpos, out=vpos) if len(vpos) else None
        width = 128 // c.n_velocity_bins
        vel_of = np.where(vpos >= 0, (ids[np.maximum(vpos, 0)] - self.vel0) * width + width // 2,
                          quantize_velocity(64, c.n_velocity_bins))
        # notes: per pitch, each NOTE_ON lasts until the next ON/OFF event of its pitch
        is_note = (typ == 2) | (typ == 3)
        npos = pos[is_note]
        pitch = np.where(typ[is_note] == 2, ids[is_note] - self.on0, ids[is_note] - self.off0)
        order = np.lexsort((npos, pitch))
        npos, pitch = npos[order], pitch[order]
        is_on = typ[npos] == 2
        nxt_same = np.zeros(len(npos), bool)  # sized to npos so an empty body stays empty
        nxt_same[:-1] = pitch[1:] == pitch[:-1]
        nxt_pos = np.zeros_like(npos)
        nxt_pos[:-1] = npos[1:]
        on_step = step[npos]
        off_step = np.where(nxt_same, step[nxt_pos], end_step)
        on_step, off_step, p, v = on_step[is_on], off_step[is_on], pitch[is_on], vel_of[npos[is_on]]
        off_step = np.minimum(off_step, c.n_steps)
        keep = on_step < c.n_steps
        notes = np.stack([on_step, np.maximum(off_step - on_step, 1), p, v], axis=1)[keep]
        # CCs: (step, lane, value), file order within a step so the last one wins
        is_cc = (typ == 5) & (step < c.n_steps)
        lane, val = np.divmod(ids[is_cc] - self.cc0, 128)
        ev = np.stack([step[is_cc], lane, val], axis=1)
        return Performance.from_events(notes, ev, n_steps=c.n_steps, cc_numbers=c.cc_numbers,
                                       tempo_bpm=tempo_bpm, steps_per_bar=c.steps_per_bar)


def _ensure_normalized(perf: Performance) -> Performance:
    """``perf`` itself when it already satisfies the ``Performance.normalized`` invariants (an O(n) check),
    else its normalised copy."""
    if _is_normalized(np.ascontiguousarray(perf.notes, dtype=np.int32), np.ascontiguousarray(perf.cc, dtype=np.int16)):
        return perf
    return perf.normalized()


def _decimate(perf: Performance, factor: int) -> Performance:
    """CC lanes held for ``factor`` steps (sample-and-hold at each block start); notes untouched."""
    if factor == 1:
        return perf
    hold = np.arange(perf.n_steps) // factor * factor
    return replace(perf, cc=perf.cc[:, hold])


@njit(cache=True, nogil=True)
def _is_normalized(notes, cc):  # pragma: no cover - compiled
    """True when ``Performance.normalized`` would return the same notes and CC lanes."""
    n_cc, n_steps = cc.shape
    end = np.zeros(128, np.int64)  # per pitch: the step where its last note ends
    for i in range(notes.shape[0]):
        o, d, p, v = notes[i, 0], notes[i, 1], notes[i, 2], notes[i, 3]
        if o < 0 or o >= n_steps or p < 0 or p > 127 or d < 1 or d > n_steps - o or v < 1 or v > 127:
            return False
        if i > 0 and (o < notes[i - 1, 0] or (o == notes[i - 1, 0] and p <= notes[i - 1, 2])):
            return False  # not strictly sorted by (onset, pitch): unsorted or a duplicate
        if end[p] > o:
            return False  # outlives the next onset of its pitch
        end[p] = o + d
    for lane in range(n_cc):
        seen = False
        for t in range(n_steps):
            x = cc[lane, t]
            if x > 127 or x < -1 or (seen and x == -1):
                return False
            seen = seen or x >= 0
    return True


@njit(cache=True, nogil=True)
def _emit_shift(out, k, gap, max_shift, shift0):  # pragma: no cover - compiled
    """Write ceil(gap / max_shift) TIME_SHIFTs at ``out[k]``: full shifts, then the remainder."""
    while gap > max_shift:
        out[k] = shift0 + max_shift - 1
        k += 1
        gap -= max_shift
    if gap > 0:
        out[k] = shift0 + gap - 1
        k += 1
    return k


@njit(cache=True, nogil=True)
def _encode_kernel(notes, cc, factor, layout, out):  # pragma: no cover - compiled
    """Ids of a normalised window into ``out``; returns their count.

    notes (n, 4) int32 sorted by (onset, pitch), no same-pitch overlap; cc (n_cc, n_steps) int16
    forward-filled; ``factor`` holds every lane for that many steps; ``layout`` int64
    [vel0, on0, off0, shift0, cc0, n_velocity_bins, max_shift]. Step by step it writes the
    documented order: NOTE_OFFs (ascending pitch), CC changes (ascending lane), VELOCITY+NOTE_ON.
    """
    vel0, on0, off0, shift0, cc0, n_bins, max_shift = (layout[0], layout[1], layout[2], layout[3],
                                                       layout[4], layout[5], layout[6])
    width = 128 // n_bins
    n = notes.shape[0]
    n_cc, n_steps = cc.shape
    # NOTE_OFFs in (off step, pitch) order: counting sort by pitch, then a stable one by off step
    start = np.zeros(129, np.int64)
    for i in range(n):
        start[notes[i, 2] + 1] += 1
    for p in range(128):
        start[p + 1] += start[p]
    by_pitch = np.empty(n, np.int64)
    for i in range(n):
        p = notes[i, 2]
        by_pitch[start[p]] = i
        start[p] += 1
    first_off = np.zeros(n_steps + 2, np.int64)
    for i in range(n):
        first_off[notes[i, 0] + notes[i, 1] + 1] += 1
    for t in range(n_steps + 1):
        first_off[t + 1] += first_off[t]
    fill = first_off.copy()
    off_pitch = np.empty(n, np.int64)
    for j in range(n):
        i = by_pitch[j]
        s = notes[i, 0] + notes[i, 1]
        off_pitch[fill[s]] = notes[i, 2]
        fill[s] += 1

    out[0] = 1  # BOS
    k = 1
    last = 0  # step of the previous event
    i_on = 0
    for t in range(n_steps + 1):
        # NOTE_OFFs
        for j in range(first_off[t], first_off[t + 1]):
            k = _emit_shift(out, k, t - last, max_shift, shift0)
            last = t
            out[k] = off0 + off_pitch[j]
            k += 1
        # CC changes: a lane's held value differs from the previous step's
        if t < n_steps:
            h = t // factor * factor
            for lane in range(n_cc):
                x = cc[lane, h]
                if x < 0 or (t > 0 and cc[lane, (t - 1) // factor * factor] == x):
                    continue
                k = _emit_shift(out, k, t - last, max_shift, shift0)
                last = t
                out[k] = cc0 + 128 * lane + x
                k += 1
        # VELOCITY + NOTE_ON pairs
        while i_on < n and notes[i_on, 0] == t:
            k = _emit_shift(out, k, t - last, max_shift, shift0)
            last = t
            out[k] = vel0 + min(notes[i_on, 3] // width, n_bins - 1)
            out[k + 1] = on0 + notes[i_on, 2]
            k += 2
            i_on += 1
    out[k] = 2  # EOS
    return k + 1
