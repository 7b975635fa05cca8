"""Render a ``Performance`` to audio: the built-in virtual-analog bass voice, or the user's VST3 instrument.

    controls = get_controls(perf, sample_rate=22050)   # CC lanes -> parameter curves, notes -> mono line
    audio = get_signal(**controls)                     # numba per-sample voice, float64
    audio = render(perf, sample_rate=22050)            # both, guarded, float32, len = round(duration_sec * sr)

Modules: ``controls`` (the CC -> parameter table, note handling), ``voice`` (the DSP kernel),
``vst3`` (pedalboard backend and its MIDI event conversion).
"""
from __future__ import annotations

import numpy as np

from vaelib.data.performance import Performance
from vaelib.synth.controls import CURVE_NAMES, MAPPING, get_controls, n_samples_of
from vaelib.synth.voice import get_signal
from vaelib.synth.vst3 import midi_events

BACKENDS = ("va", "vst3")

__all__ = ["BACKENDS", "CURVE_NAMES", "MAPPING", "get_controls", "get_signal", "guard", "midi_events", "render"]


def guard(audio: np.ndarray) -> np.ndarray:
    """Make any backend's output safe to write and compare: finite, within [-1, 1], float32.

    Non-finite samples become 0; a render that still exceeds full scale (a plugin can) is scaled down
    to peak at 1.0; the built-in voice soft-clips internally and is never rescaled, so its levels stay
    comparable across renders (a volume CC must change the level)."""
    audio = np.nan_to_num(np.asarray(audio, np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak
    return audio.astype(np.float32)


def render(perf: Performance, sample_rate: int = 22050, backend: str = "va", plugin_path=None,
           cc_map: dict[int, str] | None = None) -> np.ndarray:
    """Audio of ``perf``: float32 mono (round(perf.duration_sec * sample_rate),), finite, |x| <= 1.

    ``backend``: "va" (built-in voice, deterministic, bit-identical across runs) or "vst3"
    (``plugin_path`` to a VST3 instrument; needs pedalboard). ``cc_map`` (CC number -> parameter name,
    ``vaelib.controllers.load_cc_map``): for "va" the built-in parameter each CC drives (default
    ``DEFAULT_CC_MAP``; unmapped CCs are ignored with one warning); for "vst3" the plugin parameters that
    mapped CC lanes automate by name (unmapped CCs, and every CC without a map, go to the plugin as MIDI CC)."""
    n_samples = n_samples_of(perf, sample_rate)
    if backend == "va":
        audio = get_signal(**get_controls(perf, sample_rate=sample_rate, cc_map=cc_map))
    elif backend == "vst3":
        from vaelib.synth.vst3 import render_vst3

        audio = render_vst3(perf, sample_rate, plugin_path, n_samples, cc_map=cc_map)
    else:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    return guard(audio)
