"""``get_controls``: a ``Performance`` -> the built-in voice's parameter curves (the DDSP "controls" half).

The CC -> parameter mapping is a CC map (``vaelib.controllers``: ``DEFAULT_CC_MAP`` or a map file; the table there
is the documentation, the ``map_*`` functions below implement it row by row). A CC number the map does not name is
ignored by the voice, with one warning per set of such numbers per process. Curves are sampled at the control rate
(one frame every ``control_rate_hop`` samples) and the voice interpolates them linearly per
sample, so a jump in a CC lane becomes a short ramp, not a step (no zipper noise, no clicks).

Notes become a *monophonic* line (a bass voice): at each onset the lowest pitch of that onset
wins, a newer note cuts an older one, and a note whose onset falls strictly inside the previous
note is *legato* (no envelope retrigger, glides at the ``glide`` time). Notes that merely touch
(next onset == previous end) retrigger.
"""
from __future__ import annotations

import warnings

import numpy as np

from vaelib.controllers import DEFAULT_CC_MAP, PARAM_DEFAULTS
from vaelib.data.performance import DURATION, ONSET, PITCH, VELOCITY, Performance

# One-pole smoothing of CC curves at control rate, as hardware synths do to de-zipper 7-bit CCs:
# a 0 -> 127 jump reaches 95% in ~3 * tau. 4 ms keeps a 1/32-note step at 140 bpm (~54 ms) crisp.
SMOOTH_SEC = 0.004

CURVE_NAMES = ("cutoff_hz", "resonance", "drive", "env_octaves", "lfo_octaves", "lfo_hz", "osc_mix",
               "detune_cents", "glide_sec", "gain")


# ---------------------------------------------------------------- the table, row by row (v in [0, 1] = cc/127)
def map_cutoff(v):
    """CC74: 40 Hz -> 12 kHz, exponential."""
    return 40.0 * (12000.0 / 40.0) ** v


def map_resonance(v):
    """CC71: 0 -> 0.95 of self-oscillation (the voice's ladder feedback is 4 * this)."""
    return 0.95 * v


def map_drive(v):
    """CC70: pre-filter gain 1x -> 8x, exponential (equal steps sound equal)."""
    return 8.0 ** v


def map_env_amount(v):
    """CC79: filter-envelope depth on cutoff, 0 -> +5 octaves."""
    return 5.0 * v


def map_lfo_depth(v):
    """CC1: LFO depth on cutoff, 0 -> +-3 octaves."""
    return 3.0 * v


def map_lfo_rate(v):
    """CC76: 0.1 Hz -> 20 Hz, exponential."""
    return 0.1 * 200.0 ** v


def map_osc_mix(v):
    """CC77: saw (0) -> square (1); the sub oscillator's level follows."""
    return v


def map_detune(v):
    """CC94: second-saw detune 0 -> 50 cents."""
    return 50.0 * v


def map_glide(v):
    """CC5: portamento time on legato notes, 0 -> 0.3 s."""
    return 0.3 * v


def map_volume(v):
    """CC11 (expression): output gain, squared law (-inf dB at 0, 0 dB at 127)."""
    return v * v


MAPPING = {  # controller name -> (curve name, map)
    "cutoff": ("cutoff_hz", map_cutoff), "resonance": ("resonance", map_resonance),
    "drive": ("drive", map_drive), "env_amount": ("env_octaves", map_env_amount),
    "lfo_depth": ("lfo_octaves", map_lfo_depth), "lfo_rate": ("lfo_hz", map_lfo_rate),
    "osc_mix": ("osc_mix", map_osc_mix), "detune": ("detune_cents", map_detune),
    "glide": ("glide_sec", map_glide), "volume": ("gain", map_volume),
}


def n_samples_of(perf: Performance, sample_rate: int) -> int:
    """Audio length in samples: round(duration_sec * sample_rate)."""
    return int(round(perf.duration_sec * sample_rate))


_WARNED: set[tuple[int, ...]] = set()  # unmapped CC sets already warned about in this process


def unmapped(perf: Performance, cc_map: dict[int, str] | None = None) -> tuple[int, ...]:
    """CC numbers of ``perf`` that ``cc_map`` does not map to a built-in synth parameter."""
    m = DEFAULT_CC_MAP if cc_map is None else cc_map
    return tuple(c for c in perf.cc_numbers if m.get(c) not in PARAM_DEFAULTS)


def lane_values(perf: Performance, cc_map: dict[int, str] | None = None) -> dict[str, np.ndarray]:
    """Synth parameter -> (n_steps,) float64 in [0, 1]; a parameter no lane of ``perf`` drives is its default.

    ``cc_map`` (CC number -> parameter, default ``DEFAULT_CC_MAP``): when two lanes drive one parameter, the
    first in lane order wins. Lanes the map does not name are ignored (one warning per set of numbers)."""
    m = DEFAULT_CC_MAP if cc_map is None else cc_map
    curves = perf.cc_curves()
    out = {}
    for i, c in enumerate(perf.cc_numbers):
        param = m.get(c)
        if param in PARAM_DEFAULTS and param not in out:
            out[param] = curves[i]
    for param, default in PARAM_DEFAULTS.items():
        out.setdefault(param, np.full(perf.n_steps, default / 127.0))
    missing = unmapped(perf, m)
    if missing and missing not in _WARNED:
        _WARNED.add(missing)
        warnings.warn(f"the built-in synth ignores CC {', '.join(map(str, missing))}: no parameter in its CC map "
                      f"(they are still written to MIDI)", stacklevel=3)
    return out


def smooth_frames(x: np.ndarray, hop: int, sample_rate: int, tau_sec: float = SMOOTH_SEC) -> np.ndarray:
    """One-pole low-pass of a control-rate curve (n_frames,), time constant ``tau_sec``."""
    if tau_sec <= 0:
        return x
    a = np.exp(-hop / (tau_sec * sample_rate))
    from scipy.signal import lfilter

    y, _ = lfilter([1.0 - a], [1.0, -a], x, zi=[a * x[0]])  # start settled at the initial value
    return y


def monophonic_notes(perf: Performance, sample_rate: int) -> dict[str, np.ndarray]:
    """Notes -> a mono line: arrays ``note_on``/``note_off`` (int64 samples), ``note_pitch`` (float64 MIDI),
    ``note_velocity`` (float64 0..1), ``note_legato`` (bool)."""
    notes = perf.notes
    if len(notes):
        first = np.ones(len(notes), bool)  # rows are sorted by (onset, pitch): the first per onset is the lowest
        first[1:] = notes[1:, ONSET] != notes[:-1, ONSET]
        notes = notes[first]
    step = perf.step_sec * sample_rate
    on = np.round(notes[:, ONSET] * step).astype(np.int64)
    off = np.round((notes[:, ONSET] + notes[:, DURATION]) * step).astype(np.int64)
    legato = np.zeros(len(notes), bool)
    if len(notes) > 1:
        legato[1:] = notes[1:, ONSET] < notes[:-1, ONSET] + notes[:-1, DURATION]
    return {"note_on": on, "note_off": np.maximum(off, on + 1), "note_pitch": notes[:, PITCH].astype(np.float64),
            "note_velocity": notes[:, VELOCITY].astype(np.float64) / 127.0, "note_legato": legato}


def get_controls(perf: Performance, sample_rate: int = 22050, control_rate_hop: int = 32,
                 smooth_sec: float = SMOOTH_SEC, cc_map: dict[int, str] | None = None) -> dict:
    """All inputs of ``get_signal``.

    Returns a dict with ``sample_rate`` (int), ``n_samples`` (int), ``hop`` (int), one float64 curve per
    ``CURVE_NAMES`` entry of shape (n_frames,) = (n_samples // hop + 2,) where frame k is the value at
    sample k * hop (units in the names: Hz, octaves, cents, seconds; the rest unitless), and the note
    arrays of ``monophonic_notes``. ``cc_map``: CC number -> synth parameter (default ``DEFAULT_CC_MAP``).
    """
    n_samples = n_samples_of(perf, sample_rate)
    hop = int(control_rate_hop)
    n_frames = n_samples // hop + 2
    step_samples = perf.step_sec * sample_rate
    step_of_frame = np.minimum((np.arange(n_frames) * hop / step_samples).astype(np.int64), perf.n_steps - 1)
    values = lane_values(perf, cc_map)
    controls: dict = {"sample_rate": int(sample_rate), "n_samples": n_samples, "hop": hop}
    for name, (curve, fn) in MAPPING.items():
        frames = values[name][step_of_frame]  # sample-and-hold per grid step
        # smooth the normalised value, then map: an exponential mapping then ramps evenly in octaves
        controls[curve] = np.asarray(fn(smooth_frames(frames, hop, sample_rate, smooth_sec)), np.float64)
    controls.update(monophonic_notes(perf, sample_rate))
    return controls
