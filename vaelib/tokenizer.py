"""The paper's interleaved event vocabulary (§3.1), encoded and decoded with numpy.

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

``decode`` accepts any in-range id sequence: PAD and BOS are ignored, decoding stops at the
first EOS, an unmatched NOTE_OFF is ignored, a NOTE_ON of a sounding pitch ends the old note,
a NOTE_ON without a VELOCITY uses the last velocity seen (64 at first), notes still open at
the end close at the final time position, and events past the window are dropped.

Over-long windows follow ``TokenizerConfig.thinning``: ``"decimate"`` holds every CC lane for
2, 4, 8, ... steps (sample-and-hold at the block start) until the window fits the budget;
``"reject"`` (or a window that still does not fit) raises ``TokenBudgetError``.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from vaelib.config import TokenizerConfig
from vaelib.performance import DURATION, ONSET, PITCH, VELOCITY, Performance

PAD, BOS, EOS = 0, 1, 2
TYPE_NAMES = ("special", "velocity", "note_on", "note_off", "time_shift", "cc")


class TokenError(ValueError):
    """An id outside the vocabulary."""


class TokenBudgetError(ValueError):
    """A window that does not fit ``max_len`` under the thinning policy."""


def quantize_velocity(v, n_bins: int = 32):
    """Velocity (1..127) -> the centre of its bin, the value a decode gives back."""
    width = 128 // n_bins
    b = np.minimum(np.asarray(v) // width, n_bins - 1)
    return b * width + width // 2


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
    def _raw_encode(self, perf: Performance) -> np.ndarray:
        c = self.config
        notes = perf.notes
        # the events of the window as (step, group, sub, token): group 0 NOTE_OFF, 1 CC, 2 VELOCITY/NOTE_ON
        off_step = notes[:, ONSET] + notes[:, DURATION]
        vel_bin = np.minimum(notes[:, VELOCITY] // (128 // c.n_velocity_bins), c.n_velocity_bins - 1)
        lane, t = np.nonzero(perf.cc_changes())
        cc_val = perf.cc[lane, t]
        n = len(notes)
        step = np.concatenate([off_step, t, notes[:, ONSET], notes[:, ONSET]])
        group = np.concatenate([np.zeros(n), np.ones(len(t)), np.full(2 * n, 2)])
        sub = np.concatenate([notes[:, PITCH], lane, notes[:, PITCH] * 2, notes[:, PITCH] * 2 + 1])
        tok = np.concatenate([self.off0 + notes[:, PITCH], self.cc0 + 128 * lane + cc_val,
                              self.vel0 + vel_bin, self.on0 + notes[:, PITCH]])
        order = np.lexsort((sub, group, step))
        step, tok = step[order].astype(np.int64), tok[order].astype(np.int64)
        # TIME_SHIFTs before each event: ceil(gap / max_shift) tokens, full shifts then the remainder
        gap = np.diff(step, prepend=0)
        n_shift = -(-gap // c.max_shift)
        total = int(n_shift.sum()) + len(tok)
        out = np.empty(total + 2, np.int64)
        out[0], out[-1] = BOS, EOS
        body = out[1:-1]
        ev_pos = np.cumsum(n_shift + 1) - 1
        is_shift = np.ones(total, bool)
        is_shift[ev_pos] = False
        body[ev_pos] = tok
        owner = np.repeat(np.arange(len(tok)), n_shift)
        k = np.arange(len(owner)) - (np.cumsum(n_shift) - n_shift)[owner]  # index within the owner's run
        last = k == n_shift[owner] - 1
        amount = np.where(last, gap[owner] - c.max_shift * (n_shift[owner] - 1), c.max_shift)
        body[is_shift] = self.shift0 + amount - 1
        return out

    def fit(self, perf: Performance) -> tuple[Performance, int]:
        """Apply the thinning policy. Returns the performance that fits and its decimation factor (1 = untouched)."""
        c = self.config
        if self._raw_encode(perf).size <= c.max_len:
            return perf, 1
        if c.thinning != "decimate":
            raise TokenBudgetError(f"window needs more than {c.max_len} tokens and thinning={c.thinning!r}")
        factor = 2
        while factor <= perf.n_steps:
            hold = np.arange(perf.n_steps) // factor * factor
            thin = replace(perf, cc=perf.cc[:, hold])
            if self._raw_encode(thin).size <= c.max_len:
                return thin, factor
            factor *= 2
        raise TokenBudgetError(f"window needs more than {c.max_len} tokens even without CC motion "
                               f"({perf.n_notes} notes)")

    def encode(self, perf: Performance) -> np.ndarray:
        """Performance -> int64 ids ``BOS ... EOS`` of length <= ``max_len`` (thinning applied)."""
        if perf.cc_numbers != tuple(self.config.cc_numbers):
            raise ValueError(f"performance monitors {perf.cc_numbers}, tokenizer {self.config.cc_numbers}")
        perf = perf.normalized()
        return self._raw_encode(self.fit(perf)[0])

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
        # velocity: the last VELOCITY token before each position (64 before any)
        vpos = np.where(typ == 1, pos, -1)
        np.maximum.accumulate(vpos, out=vpos) if len(vpos) else None
        width = 128 // c.n_velocity_bins
        vel_of = np.where(vpos >= 0, (ids[np.maximum(vpos, 0)] - self.vel0) * width + width // 2, 64)
        # notes: per pitch, each NOTE_ON lasts until the next ON/OFF event of its pitch
        is_note = (typ == 2) | (typ == 3)
        npos = pos[is_note]
        pitch = np.where(typ[is_note] == 2, ids[is_note] - self.on0, ids[is_note] - self.off0)
        order = np.lexsort((npos, pitch))
        npos, pitch = npos[order], pitch[order]
        is_on = typ[npos] == 2
        nxt_same = np.append(pitch[1:] == pitch[:-1], False)
        nxt_pos = np.append(npos[1:], 0)
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
