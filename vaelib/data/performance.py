"""``Performance``: the one in-memory musical object of vaelib.

A performance is a window of ``n_bars`` bars on a grid of ``steps_per_bar`` steps per bar
(1/32 notes by default, so 4 bars = 128 steps). It holds

* ``notes``: int32 array (n, 4) with columns ``onset`` (step), ``duration`` (steps, >= 1),
  ``pitch`` (0..127) and ``velocity`` (1..127), sorted by (onset, pitch);
* ``cc``: int16 array (n_cc, n_steps) of per-step sample-and-hold values for the monitored
  controllers ``cc_numbers``. ``cc[i, t]`` is the value in force during step ``t`` (the last
  value written within the step wins). ``-1`` means "never set so far in this window";
  ``cc[:, 0]`` is the controller state at the window start (``initial_cc``);
* ``tempo_bpm`` and ``steps_per_bar``, plus free-form ``style`` and ``source`` labels.

Every stage of the pipeline speaks ``Performance`` or token arrays and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from vaelib.controllers import DEFAULT_CC_NUMBERS, default_value

ONSET, DURATION, PITCH, VELOCITY = range(4)


def quantize_velocity(v, n_bins: int = 32):
    """Velocity (1..127) -> the centre of its bin, the value a decode gives back."""
    width = 128 // n_bins
    b = np.minimum(np.asarray(v) // width, n_bins - 1)
    return b * width + width // 2


@dataclass(eq=False)
class Performance:
    notes: np.ndarray  # (n, 4) int32: onset, duration, pitch, velocity
    cc: np.ndarray  # (n_cc, n_steps) int16, -1 = unset
    cc_numbers: tuple[int, ...] = DEFAULT_CC_NUMBERS
    tempo_bpm: float = 140.0
    steps_per_bar: int = 32
    style: str = ""
    source: str = ""

    def __post_init__(self) -> None:
        self.notes = np.asarray(self.notes, dtype=np.int32).reshape(-1, 4)
        self.cc = np.asarray(self.cc, dtype=np.int16)
        self.cc_numbers = tuple(int(c) for c in self.cc_numbers)
        if self.cc.ndim != 2 or self.cc.shape[0] != len(self.cc_numbers):
            raise ValueError(f"cc must be (n_cc={len(self.cc_numbers)}, n_steps), got {self.cc.shape}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, n_steps: int = 128, cc_numbers=DEFAULT_CC_NUMBERS, **kw) -> "Performance":
        return cls(np.zeros((0, 4), np.int32), np.full((len(cc_numbers), n_steps), -1, np.int16), cc_numbers, **kw)

    @classmethod
    def from_events(cls, notes, cc_events, n_steps: int = 128, cc_numbers=DEFAULT_CC_NUMBERS,
                    initial_cc=None, **kw) -> "Performance":
        """Build from note rows and sparse CC events ``(step, lane, value)`` (later rows win within a step).

        ``initial_cc`` (n_cc,) gives the state carried into the window (-1 = unknown).
        The result is normalised (see ``normalized``).
        """
        n_cc = len(cc_numbers)
        cc = np.full((n_cc, n_steps), -1, np.int16)
        start = np.full(n_cc, -1, np.int16) if initial_cc is None else np.asarray(initial_cc, np.int16)
        ev = np.asarray(cc_events, dtype=np.int64).reshape(-1, 3)
        ev = ev[(ev[:, 0] >= 0) & (ev[:, 0] < n_steps)]
        cc[:, 0] = start
        lanes_ok = (ev[:, 1] >= 0) & (ev[:, 1] < n_cc)
        ev = ev[lanes_ok]
        cc[ev[:, 1], ev[:, 0]] = np.clip(ev[:, 2], 0, 127)  # fancy assignment: the last row per cell wins
        # the marks are sparse: forward-fill them, keeping -1 only before a lane's first value
        marks = np.full((n_cc, n_steps), False)
        marks[ev[:, 1], ev[:, 0]] = True
        marks[:, 0] |= cc[:, 0] >= 0
        cc = np.where(marks, cc, -1).astype(np.int16)
        cc = ffill_lanes(cc)
        return cls(np.asarray(notes, np.int32).reshape(-1, 4), cc, cc_numbers, **kw).normalized()

    # ------------------------------------------------------------------ properties
    @property
    def n_steps(self) -> int:
        return int(self.cc.shape[1])

    @property
    def n_bars(self) -> int:
        return self.n_steps // self.steps_per_bar

    @property
    def step_sec(self) -> float:
        """Seconds per grid step (a bar of 4/4 is 4 beats)."""
        return 60.0 / self.tempo_bpm * 4.0 / self.steps_per_bar

    @property
    def duration_sec(self) -> float:
        return self.n_steps * self.step_sec

    @property
    def initial_cc(self) -> np.ndarray:
        """(n_cc,) controller state at the window start, -1 where unknown."""
        return self.cc[:, 0].copy()

    @property
    def n_notes(self) -> int:
        return int(len(self.notes))

    def cc_changes(self) -> np.ndarray:
        """(n_cc, n_steps) bool: where a lane's value differs from the previous step (step 0: set lanes)."""
        prev = np.concatenate([np.full((self.cc.shape[0], 1), -1, np.int16), self.cc[:, :-1]], axis=1)
        return (self.cc != prev) & (self.cc >= 0)

    # ------------------------------------------------------------------ invariants
    def normalized(self) -> "Performance":
        """Clip notes to the window, make durations >= 1, of notes sharing (onset, pitch) keep the
        last row given (a later note of a pitch ends an earlier one, and at the same onset the
        earlier one has no length left; ``vaelib.data.midi`` reads the same way), end earlier same-pitch
        notes where a later one starts, and sort by (onset, pitch). CC values are clipped to
        0..127 (negative = unset) and forward-filled."""
        n = self.notes.astype(np.int64)
        T = self.n_steps
        if len(n):
            n = n[(n[:, ONSET] >= 0) & (n[:, ONSET] < T) & (n[:, PITCH] >= 0) & (n[:, PITCH] <= 127)]
            n[:, DURATION] = np.clip(n[:, DURATION], 1, T - n[:, ONSET])
            n[:, VELOCITY] = np.clip(n[:, VELOCITY], 1, 127)
            n = n[np.lexsort((n[:, PITCH], n[:, ONSET]))]  # stable: rows sharing (onset, pitch) keep input order
            last_of_key = np.ones(len(n), bool)
            last_of_key[:-1] = (n[1:, ONSET] != n[:-1, ONSET]) | (n[1:, PITCH] != n[:-1, PITCH])
            n = n[last_of_key]
            # same pitch: a note cannot outlive the next onset of its pitch (onsets now differ, so >= 1 step)
            order = np.lexsort((n[:, ONSET], n[:, PITCH]))
            p, o = n[order, PITCH], n[order, ONSET]
            nxt = np.where(p[1:] == p[:-1], o[1:], np.iinfo(np.int64).max)
            n[order[:-1], DURATION] = np.minimum(o[:-1] + n[order[:-1], DURATION], nxt) - o[:-1]
        cc = ffill_lanes(np.where(self.cc < 0, -1, np.clip(self.cc, 0, 127)).astype(np.int16))
        return replace(self, notes=n.astype(np.int32).reshape(-1, 4), cc=cc)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Performance):
            return NotImplemented
        return (self.cc_numbers == other.cc_numbers and self.steps_per_bar == other.steps_per_bar
                and np.isclose(self.tempo_bpm, other.tempo_bpm) and self.notes.shape == other.notes.shape
                and bool(np.array_equal(self.notes, other.notes)) and self.cc.shape == other.cc.shape
                and bool(np.array_equal(self.cc, other.cc)))

    def __repr__(self) -> str:
        active = int(self.cc_changes().sum())
        return (f"Performance(n_notes={self.n_notes}, n_steps={self.n_steps}, cc_changes={active}, "
                f"tempo_bpm={self.tempo_bpm:.1f}, style={self.style!r}, source={self.source!r})")

    # ------------------------------------------------------------------ views
    def piano_roll(self) -> np.ndarray:
        """(128, n_steps) uint8 velocity roll."""
        roll = np.zeros((128, self.n_steps), np.uint8)
        for on, dur, p, v in self.notes:
            roll[p, on:on + dur] = v
        return roll

    def cc_filled(self) -> np.ndarray:
        """(n_cc, n_steps) int16 with never-set steps replaced by each controller's default."""
        defaults = np.array([default_value(c) for c in self.cc_numbers], np.int16)[:, None]
        return np.where(self.cc < 0, defaults, self.cc).astype(np.int16)

    def cc_curves(self) -> np.ndarray:
        """(n_cc, n_steps) float64 sample-and-hold curves normalised to [0, 1] (value / 127)."""
        return self.cc_filled().astype(np.float64) / 127.0

    def with_quantized_velocity(self, n_bins: int = 32) -> "Performance":
        n = self.notes.copy()
        n[:, VELOCITY] = quantize_velocity(n[:, VELOCITY], n_bins)
        return replace(self, notes=n)

    # ------------------------------------------------------------------ muspy bridge
    def to_muspy(self, resolution: int | None = None):
        """A ``muspy.Music`` with one bass track; a grid step is one time unit when
        ``resolution`` (ticks per beat) is left at ``steps_per_bar // 4``.
        CCs go to ``track.annotations`` in muspy's own reader format (group ``control_change``)."""
        import muspy

        res = resolution or self.steps_per_bar // 4
        scale = res * 4 // self.steps_per_bar
        notes = [muspy.Note(time=int(o) * scale, pitch=int(p), duration=int(d) * scale, velocity=int(v))
                 for o, d, p, v in self.notes]
        anns = []
        ch = self.cc_changes()
        for lane, t in zip(*np.nonzero(ch)):
            anns.append(muspy.Annotation(time=int(t) * scale, group="control_change",
                                         annotation={"number": self.cc_numbers[lane], "value": int(self.cc[lane, t])}))
        track = muspy.Track(program=38, is_drum=False, name="bass", notes=notes, annotations=anns)
        return muspy.Music(resolution=res, tempos=[muspy.Tempo(time=0, qpm=float(self.tempo_bpm))],
                           time_signatures=[muspy.TimeSignature(time=0, numerator=4, denominator=4)],
                           tracks=[track])

    @classmethod
    def from_muspy(cls, music, n_steps: int = 128, steps_per_bar: int = 32,
                   cc_numbers=DEFAULT_CC_NUMBERS, track: int = 0) -> "Performance":
        """Quantise the first ``n_steps`` of one track of a ``muspy.Music`` onto the grid."""
        ticks_per_step = music.resolution * 4 / steps_per_bar
        tr = music.tracks[track]
        rows = [(round(n.time / ticks_per_step), max(1, round(n.duration / ticks_per_step)), n.pitch, n.velocity or 64)
                for n in tr.notes]
        lane_of = {c: i for i, c in enumerate(cc_numbers)}
        ev = []
        for a in tr.annotations:
            if a.group == "control_change" and isinstance(a.annotation, dict) and a.annotation.get("number") in lane_of:
                ev.append((int(a.time // ticks_per_step), lane_of[a.annotation["number"]], int(a.annotation["value"])))
        ev.sort(key=lambda e: e[0])  # stable: file order within a step, so the last written wins
        tempo = music.tempos[0].qpm if music.tempos else 120.0
        return cls.from_events(rows, ev, n_steps=n_steps, cc_numbers=cc_numbers, tempo_bpm=float(tempo),
                               steps_per_bar=steps_per_bar)


def ffill_lanes(cc: np.ndarray) -> np.ndarray:
    """Forward-fill -1 gaps of (n_cc, n_steps) lanes; leading -1 (never set yet) stays."""
    n_steps = cc.shape[1]
    idx = np.where(cc >= 0, np.arange(n_steps)[None, :], -1)
    np.maximum.accumulate(idx, axis=1, out=idx)
    out = np.take_along_axis(cc, np.maximum(idx, 0), axis=1)
    return np.where(idx >= 0, out, -1).astype(np.int16)
