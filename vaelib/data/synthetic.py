"""The embedded default corpus: procedural, seeded, deterministic basslines with dense CC automation.

Three styles (``STYLES``), each with per-example parameters drawn from its own generator
(``np.random.default_rng((seed, index))``), so example ``i`` does not depend on ``n_examples``
and ``generate(10)`` is a prefix of ``generate(1000)``:

* ``wobble`` (dubstep, 135-150 BPM): each bar splits into segments with their own tempo-synced
  LFO rate (1/4, 1/8, 1/8T, 1/16, 1/32) and shape (sine, saw, square, sample-and-hold). Slow
  rates (1/4, 1/8, 1/8T) are drawn on the cutoff lane; fast ones (1/16, 1/32) cannot be drawn on
  a 1/32 grid, so they go to the synth's own LFO (``lfo_rate`` carries the synced rate, ``lfo_depth``
  opens) while the cutoff holds its centre. Sidechain-style volume pumping on every beat.
* ``glitch`` (IDM, 130-175 BPM): step-sequenced random cutoff values, ratchets (repeated 1/32
  notes), odd-length LFO cycles (3/16, 5/32) on resonance and oscillator shape, bursts of
  per-step random motion with drive spikes.
* ``reese`` (DnB, 160-175 BPM): long legato notes, slow detune and cutoff sweeps over the whole
  window, swells on volume.

Notes carry syncopation (off-beat 1/16 onsets), octave jumps, legato slides (a note overlaps the
next; ``glide`` opens for it) and velocity accents (``drive`` and ``env_amount`` follow them).
The lanes are coupled, not independent noise: resonance follows cutoff, drive follows accents,
volume ducks on beats or notes, lfo_rate names the wobble rate in force.

``complexity`` (0..1) sets the CC density: it picks each lane's sample-and-hold period (a
coarser hold -> fewer value changes -> fewer CC tokens). Per-example jitter on density, rates,
shapes, register and rhythm gives a latent code something to encode.
"""
from __future__ import annotations

import numpy as np

from vaelib.controllers import DEFAULT_CC_NUMBERS, name_of
from vaelib.data.performance import Performance

STYLES: tuple[str, ...] = ("wobble", "glitch", "reese")
TEMPO_BPM = {"wobble": (135.0, 150.0), "glitch": (130.0, 175.0), "reese": (160.0, 175.0)}
WOBBLE_RATES = {"1/4": 1 / 4, "1/8": 1 / 8, "1/8T": 1 / 12, "1/16": 1 / 16, "1/32": 1 / 32}  # cycle, in bars
SHAPES = ("sine", "saw", "square", "sample_hold")
_DEGREES = np.array([0, 0, 0, 0, 12, 7, 3, 5, 10, 1])  # semitones over the root: root-heavy minor + phrygian b2
_HOLD_LEVELS = (1, 2, 3, 5, 7, 11)  # odd holds never lock onto a beat-synced LFO and freeze it
_BAR_SPLITS = ((1.0,), (0.5, 0.5), (0.75, 0.25), (0.25, 0.25, 0.5), (0.5, 0.25, 0.25))


def generate(n_examples: int, seed: int = 0, complexity: float = 0.6, n_bars: int = 4, steps_per_bar: int = 32,
             cc_numbers=DEFAULT_CC_NUMBERS) -> list[Performance]:
    """``n_examples`` performances of ``n_bars * steps_per_bar`` steps, styles in rotation.

    Each has ``.style`` in ``STYLES`` and a unique ``.source`` (``synthetic/<style>/<seed>-<index>``).
    ``steps_per_bar`` must be a multiple of 16 (the patterns live on 1/16 notes and ratchet on 1/32).
    """
    if steps_per_bar % 16:
        raise ValueError(f"steps_per_bar must be a multiple of 16, got {steps_per_bar}")
    if not 0.0 <= complexity <= 1.0:
        raise ValueError(f"complexity must be in [0, 1], got {complexity}")
    return [generate_one(i, seed, complexity, n_bars, steps_per_bar, tuple(cc_numbers)) for i in range(n_examples)]


def generate_one(index: int, seed: int = 0, complexity: float = 0.6, n_bars: int = 4, steps_per_bar: int = 32,
                 cc_numbers=DEFAULT_CC_NUMBERS) -> Performance:
    """Example ``index`` of the corpus for ``seed`` (what ``generate`` returns at that position)."""
    rng = np.random.default_rng((int(seed), int(index)))
    style = STYLES[index % len(STYLES)]
    g = _Grid(n_bars, steps_per_bar)
    lo, hi = TEMPO_BPM[style]
    tempo = float(np.round(rng.uniform(lo, hi), 1))
    notes, accent, slide = _notes(rng, style, g)
    lanes = _lanes(rng, style, g, notes, accent, slide, complexity, tempo)
    cc = np.stack([lanes.get(name_of(c), _generic_lane(rng, g)) for c in cc_numbers])
    cc = np.clip(np.rint(cc), 0, 127).astype(np.int16)
    return Performance(notes, cc, tuple(cc_numbers), tempo, steps_per_bar, style,
                       f"synthetic/{style}/{seed}-{index:06d}").normalized()


class _Grid:
    def __init__(self, n_bars: int, steps_per_bar: int):
        self.n_bars, self.bar = n_bars, steps_per_bar
        self.beat, self.six = steps_per_bar // 4, steps_per_bar // 16
        self.T = n_bars * steps_per_bar
        self.t = np.arange(self.T)


# ---------------------------------------------------------------------------------------------- notes
def _notes(rng, style: str, g: _Grid):
    """(n, 4) int32 notes plus per-note accent and slide flags."""
    per_bar = 16  # 1/16 positions
    if style == "reese":
        # sparse, long: onsets on 1/8 positions, a few syncopated
        prob = np.where(np.arange(per_bar) % 4 == 0, 0.45, np.where(np.arange(per_bar) % 2 == 0, 0.12, 0.04))
        prob[0] = 1.0
    else:
        dens = rng.uniform(0.15, 0.4) if style == "wobble" else rng.uniform(0.2, 0.45)
        pos = np.arange(per_bar)
        # syncopation: the "e" and "a" sixteenths get real weight, not just the downbeats
        prob = np.where(pos % 4 == 0, 0.85, np.where(pos % 2 == 0, 0.5, 0.45)) * dens / 0.5
        prob[0] = 1.0
    bar_a = rng.random(per_bar) < np.clip(prob, 0, 1)
    bar_b = bar_a ^ (rng.random(per_bar) < 0.15)  # a variation bar
    bar_b[0] = True  # every bar opens with a note
    form = [bar_a, bar_b] * ((g.n_bars + 1) // 2)
    on16 = np.concatenate([np.nonzero(form[b])[0] + b * per_bar for b in range(g.n_bars)])
    onset = on16 * g.six
    n = len(onset)
    gap = np.diff(np.append(onset, g.T))
    root = int(rng.integers(*{"wobble": (28, 41), "glitch": (30, 47), "reese": (26, 38)}[style]))
    # a pitch per 1/16 position for the A bar; the B bar re-draws about a third of them, so the
    # line repeats as a motif (octave jumps included) instead of being fresh noise every bar
    deg = _DEGREES[rng.integers(0, len(_DEGREES), (2, per_bar))]
    jump = rng.random((2, per_bar)) < (0.1 if style == "reese" else 0.2)
    keep = rng.random(per_bar) > 0.35
    deg[1], jump[1] = np.where(keep, deg[0], deg[1]), np.where(keep, jump[0], jump[1])
    form_of, pos_of = (on16 // per_bar) % 2, on16 % per_bar
    pitch = root + deg[form_of, pos_of] + 12 * jump[form_of, pos_of]
    accent = (rng.random(n) < 0.3) | (onset % g.beat == 0) & (rng.random(n) < 0.5)
    accent[0] = True  # at least one accented and one plain note, so drive and env_amount always move
    accent[n // 2] &= n < 2 or not accent.all()
    vel = np.where(accent, rng.integers(108, 128, n), rng.integers(60, 100, n))
    slide = rng.random(n) < {"wobble": 0.2, "glitch": 0.1, "reese": 0.45}[style]
    gate = rng.uniform(0.3, 0.95) if style != "reese" else 1.0
    dur = np.maximum(1, np.floor(gap * gate)).astype(np.int64)
    dur = np.where(slide, gap + g.six, dur)  # legato: overlap the next note
    rows = np.stack([onset, dur, pitch, vel], 1)
    if style == "glitch":
        rows, accent, slide = _ratchet(rng, g, rows, accent, slide)
    return rows.astype(np.int32), accent, slide


def _ratchet(rng, g: _Grid, rows, accent, slide):
    """Replace some notes by 2-4 repeats on consecutive 1/32 steps with decaying velocity."""
    pick = rng.random(len(rows)) < 0.25
    reps = np.where(pick, rng.integers(2, 5, len(rows)), 1)
    idx = np.repeat(np.arange(len(rows)), reps)
    k = np.arange(len(idx)) - np.repeat(np.cumsum(reps) - reps, reps)
    out = rows[idx].copy()
    rat = reps[idx] > 1
    out[:, 0] += np.where(rat, k * (g.six // 2 or 1), 0)
    out[:, 1] = np.where(rat, 1, out[:, 1])
    out[:, 3] = np.where(rat, np.maximum(out[:, 3] - 12 * k, 30), out[:, 3])
    return out, accent[idx] & (k == 0), slide[idx] & ~rat


# ---------------------------------------------------------------------------------------------- lanes
def _shape(kind: np.ndarray, phase: np.ndarray, sh_vals: np.ndarray) -> np.ndarray:
    """LFO value in [0, 1] per step for shape codes ``kind`` (index into SHAPES) at ``phase`` (cycles)."""
    frac = phase % 1.0
    cyc = np.floor(phase).astype(np.int64) % len(sh_vals)
    table = np.stack([0.5 + 0.5 * np.cos(2 * np.pi * frac), 1.0 - frac, (frac < 0.5).astype(float), sh_vals[cyc]])
    return table[kind, np.arange(len(phase))]


def _hold(x: np.ndarray, period: int, offset: int = 0) -> np.ndarray:
    """Sample-and-hold ``x`` every ``period`` steps: the knob that sets CC density."""
    t = np.arange(len(x))
    return x[np.maximum((t - offset) // period * period + offset, 0)]


def _steps(x: np.ndarray, size: float) -> np.ndarray:
    """Quantise a slow curve to ``size``-wide value steps: a sweep changes less often, in bigger moves."""
    return np.round(x / size) * size


def _at_notes(g: _Grid, onsets: np.ndarray, values: np.ndarray, before: float) -> np.ndarray:
    """Piecewise-constant lane that jumps to ``values[k]`` at ``onsets[k]``."""
    idx = np.searchsorted(onsets, g.t, side="right") - 1
    return np.where(idx >= 0, values[np.maximum(idx, 0)], before)


def _per_bar(rng, g: _Grid, lo: float, hi: float) -> np.ndarray:
    """One distinct value per bar (a shuffled ramp, so neighbouring bars always differ)."""
    v = rng.permutation(np.linspace(lo, hi, max(g.n_bars, 2)))[: g.n_bars] + rng.uniform(-2, 2, g.n_bars)
    return np.repeat(v, g.bar)


def _rate_cc(cycle_bars: np.ndarray, tempo: float) -> np.ndarray:
    """CC value of the synth LFO rate (0.1 -> 20 Hz, exponential) for a cycle of ``cycle_bars`` bars."""
    hz = tempo / 60.0 / 4.0 / cycle_bars
    return 127.0 * np.log(np.clip(hz, 0.1, 20.0) / 0.1) / np.log(200.0)


def _periods(rng, complexity: float) -> tuple[int, int, int]:
    """Hold periods (main, coupled, slow) in steps; the main lane is the densest."""
    d = float(np.clip(complexity * rng.uniform(0.75, 1.25), 0.0, 1.0))
    k = int(np.clip(np.rint((1.0 - d) * 3.2), 0, 3))
    return _HOLD_LEVELS[k], _HOLD_LEVELS[k + 1], _HOLD_LEVELS[k + 2]


def _lanes(rng, style, g: _Grid, notes, accent, slide, complexity, tempo) -> dict[str, np.ndarray]:
    p_main, p_cpl, p_slow = _periods(rng, complexity)
    t, T = g.t, g.T
    onset = notes[:, 0].astype(np.int64)
    on_first = np.unique(onset, return_index=True)[1]
    onset_u, acc_u, sl_u = onset[on_first], accent[on_first], slide[on_first]
    L: dict[str, np.ndarray] = {}
    lfo_depth = np.zeros(T)
    if style == "wobble":
        # segments with their own synced rate and shape; the second half repeats the first with changes
        # at least one slow rate (drawn on the cutoff) and one fast one (the synth LFO)
        rate_names = [rng.choice(["1/4", "1/8", "1/8T"]), rng.choice(["1/16", "1/32"]), rng.choice(list(WOBBLE_RATES))]
        shapes = rng.choice(len(SHAPES), size=3, replace=False)
        seg_rate, seg_shape, seg_start = np.zeros(T), np.zeros(T, np.int64), np.zeros(T, np.int64)
        for b in range(g.n_bars):
            split = _BAR_SPLITS[rng.integers(len(_BAR_SPLITS))] if b % 2 == 0 or rng.random() < 0.5 else split
            s = b * g.bar
            for k, frac in enumerate(split):
                e = s + int(frac * g.bar)
                j = (k + b) % 3
                seg_rate[s:e], seg_shape[s:e], seg_start[s:e] = WOBBLE_RATES[rate_names[j]], shapes[j], s
                s = e
        cycle_steps = seg_rate * g.bar
        phase = (t - seg_start) / cycle_steps
        centre, depth = rng.uniform(35, 70), rng.uniform(30, 55)
        lfo = _shape(seg_shape, phase, rng.random(64))
        fast = cycle_steps < 2.5  # 1/16 and 1/32 go to the synth LFO
        cutoff = np.where(fast, centre + 0.4 * depth, centre + depth * (lfo - 0.3))
        L["cutoff"] = _hold(cutoff, min(p_main, 3))  # the star lane stays fine enough to show the wobble
        lfo_depth = np.where(fast, rng.uniform(50, 100), rng.uniform(0, 15))
        L["lfo_rate"] = _rate_cc(seg_rate, tempo)
        duck = rng.uniform(25, 60) * np.exp(-(t % g.beat) / rng.uniform(1.5, 4.0))
        L["volume"] = _hold(110 - duck, min(p_cpl, g.beat // 2))
        L["detune"] = _per_bar(rng, g, 0, 30)
        L["osc_mix"] = _per_bar(rng, g, 0, 100)
    elif style == "glitch":
        # step sequencer on the cutoff, odd-length cycles (3/16, 5/32) on resonance and shape
        n_seq = int(rng.choice([5, 6, 7, 8, 12, 16]))
        seq = rng.uniform(10, 120, n_seq)
        step_len = int(rng.choice([g.six, 2 * g.six]))
        cutoff = seq[(t // step_len) % n_seq]
        burst = np.zeros(T, bool)
        for b0 in rng.choice(T // g.beat, size=int(rng.integers(1, 4)), replace=False):
            burst[b0 * g.beat: b0 * g.beat + int(rng.integers(g.six * 2, g.beat + 1))] = True
        cutoff = np.where(burst, rng.uniform(0, 127, T), _hold(cutoff, p_main))
        L["cutoff"] = cutoff
        # an odd-length square or sample-and-hold cycle on the oscillator shape, in some bars only
        # (more of them at higher complexity); drawn unheld, since any hold would alias the odd cycle
        odd = rng.choice([3 * g.six, 5 * g.six // 2 or 1])
        odd_lfo = _shape(np.full(T, rng.choice([2, 3])), t / odd, rng.random(64)) * 100 + 10
        on_bars = rng.random(g.n_bars) < 0.3 + 0.7 * complexity
        on_bars[rng.integers(g.n_bars)] = True
        L["osc_mix"] = np.where(np.repeat(on_bars, g.bar), odd_lfo, _per_bar(rng, g, 0, 60))
        lfo_depth = np.where(burst, rng.uniform(60, 120), rng.uniform(0, 20))
        L["lfo_rate"] = _hold(_per_bar(rng, g, 40, 120), g.beat) + np.where(burst, 10, 0)
        gate = _at_notes(g, onset_u, np.where(acc_u, 115.0, rng.uniform(70, 95)), 100.0)
        L["volume"] = _hold(np.where(burst, gate * 0.7, gate), p_cpl)
        L["detune"] = _hold(seq[(t // (3 * step_len)) % n_seq] * 0.3, p_slow)
    else:  # reese
        # slow sweeps over the whole window: detune and cutoff drift against each other
        span = T * rng.uniform(0.5, 2.0)
        ph0 = rng.random()
        sweep = 0.5 - 0.5 * np.cos(2 * np.pi * (t / span + ph0))
        L["detune"] = _hold(_steps(rng.uniform(50, 70) + rng.uniform(30, 55) * sweep, 4), p_cpl)
        cutoff = rng.uniform(25, 45) + rng.uniform(25, 50) * (0.5 - 0.5 * np.cos(2 * np.pi * (t / (span * 0.75) + ph0)))
        L["cutoff"] = _hold(cutoff, p_main)
        lfo_depth = _hold(_steps(rng.uniform(5, 25) * (1 + np.sin(2 * np.pi * t / T)), 3), p_slow)
        L["lfo_rate"] = _per_bar(rng, g, 10, 50)
        swell = _at_notes(g, onset_u, onset_u.astype(float), 0.0)
        L["volume"] = _hold(80 + 40 * np.minimum((t - swell) / rng.uniform(4, 16), 1.0), p_cpl)
        L["osc_mix"] = _hold(_steps(20 + 60 * sweep[::-1], 4), p_slow)
    L["lfo_depth"] = lfo_depth
    # resonance follows cutoff (inverted for wobble: squelch as the filter closes) at the coupled period
    sign = -1.0 if style == "wobble" else 1.0
    c = L["cutoff"]
    L["resonance"] = _hold(_steps(rng.uniform(40, 70) + sign * 0.35 * (c - c.mean()), 2), p_cpl)
    # drive and envelope amount follow the accents; glide opens on legato slides
    # two levels each (accented / plain), so they change where the accent pattern does, not on every note
    L["drive"] = _at_notes(g, onset_u, np.where(acc_u, rng.uniform(80, 120), rng.uniform(15, 45)), 30.0)
    L["env_amount"] = _at_notes(g, onset_u, np.where(acc_u, rng.uniform(70, 110), rng.uniform(20, 60)), 40.0)
    glide_val = rng.uniform(40, 100)
    L["glide"] = _at_notes(g, onset_u, np.where(np.roll(sl_u, 1), glide_val, 0.0), 0.0)
    if not (L["glide"] > 0).any():  # no slide landed: glide rides a per-bar pattern instead
        L["glide"] = _per_bar(rng, g, 0, glide_val)
    return L


def _generic_lane(rng, g: _Grid) -> np.ndarray:
    """A lane for a controller outside the table: a slow per-bar pattern."""
    return _per_bar(rng, g, 10, 110)
