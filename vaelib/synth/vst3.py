"""The ``vst3`` backend: play a ``Performance`` on the user's own VST3 instrument through pedalboard.

pedalboard is GPL-3.0, so it is an optional extra (``pip install vaelib[vst3]``); it is imported only here.

Known pedalboard pitfalls handled here:
* more than 100 MIDI events at one timestamp raise an error, so ``midi_events`` moves each further group
  of 100 one sample period later (timestamps become sample positions inside the host, so a smaller nudge
  could land on the same sample; one sample is inaudible);
* a larger ``buffer_size`` in a later call silently resets an instrument's filter state, so we always
  render with the same fixed ``BLOCK_SIZE``.

With a CC map (``vaelib.controllers.load_cc_map(path, builtin=False)``: CC number -> the plugin's parameter name),
mapped lanes automate those parameters instead of being sent as MIDI CC: the window is rendered in segments cut
at every change of a mapped lane (``parameter_segments``), each with the parameters set to value / 127 of their
range (``raw_value``) and the plugin's state carried on (``reset=False`` after the first).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from vaelib.data.performance import DURATION, ONSET, PITCH, VELOCITY, Performance

MAX_EVENTS_PER_TIMESTAMP = 100  # pedalboard's limit
BLOCK_SIZE = 512  # fixed for every call (see module docstring)
CHANNEL = 0


def midi_events(perf: Performance, sample_rate: int = 44100, skip_cc=()) -> list[tuple[bytes, float]]:
    """Notes and CC changes as raw MIDI messages with absolute times in seconds, sorted by time.

    At one time, CCs come before note-offs before note-ons (a controller change applies to the note
    starting with it; a retriggered pitch is released before it is struck again). No timestamp carries
    more than ``MAX_EVENTS_PER_TIMESTAMP`` events (surplus groups move one ``1 / sample_rate`` each).
    Returns a list of ``(bytes, seconds)``, the form ``pedalboard`` instruments accept. CC numbers in
    ``skip_cc`` are left out (they automate plugin parameters instead).
    """
    nudge_sec = 1.0 / sample_rate
    step = perf.step_sec
    raw: list[tuple[float, int, bytes]] = []  # (seconds, order at equal time, message)
    changes = perf.cc_changes()
    for lane, t in zip(*np.nonzero(changes)):
        if perf.cc_numbers[lane] in skip_cc:
            continue
        raw.append((t * step, 0, bytes([0xB0 | CHANNEL, perf.cc_numbers[lane], int(perf.cc[lane, t])])))
    for on, dur, pitch, vel in perf.notes[:, [ONSET, DURATION, PITCH, VELOCITY]]:
        raw.append(((on + dur) * step, 1, bytes([0x80 | CHANNEL, int(pitch), 0])))
        raw.append((on * step, 2, bytes([0x90 | CHANNEL, int(pitch), int(vel)])))
    raw.sort(key=lambda e: (e[0], e[1]))
    out: list[tuple[bytes, float]] = []
    i = 0
    while i < len(raw):
        j = i
        while j < len(raw) and raw[j][0] == raw[i][0]:
            j += 1
        for k in range(i, j):  # the g-th group of 100 at this time moves g samples later
            out.append((raw[k][2], float(raw[k][0] + ((k - i) // MAX_EVENTS_PER_TIMESTAMP) * nudge_sec)))
        i = j
    out.sort(key=lambda e: e[1])
    return out


def load_instrument(plugin_path):
    """``pedalboard.load_plugin(path)`` with clear errors for a missing pedalboard or plugin file."""
    if plugin_path is None:
        raise ValueError("backend 'vst3' needs plugin_path=<path to a .vst3 instrument>")
    path = Path(plugin_path)
    if not path.exists():
        raise FileNotFoundError(f"VST3 plugin not found: {path}")
    try:
        import pedalboard
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("backend 'vst3' needs pedalboard (GPL-3.0): pip install 'vaelib[vst3]'") from e
    plugin = pedalboard.load_plugin(str(path))
    if not getattr(plugin, "is_instrument", False):
        raise ValueError(f"{path} is not an instrument plugin (it does not accept MIDI)")
    return plugin


def parameter_segments(perf: Performance, cc_map: dict[int, str], sample_rate: int, n_samples: int) -> list[dict]:
    """The render plan of a mapped window: segments ``{"start", "stop"}`` (samples), ``"params"`` (parameter
    name -> raw value in [0, 1], the lane's value / 127; a never-set lane is its default) and ``"events"`` (the
    unmapped MIDI of ``midi_events`` inside the segment, times relative to its start). Segments are cut at each
    grid step where a mapped lane changes; together they cover ``[0, n_samples)``."""
    lanes = [(i, cc_map[c]) for i, c in enumerate(perf.cc_numbers) if c in cc_map]
    curves = perf.cc_curves()
    step = perf.step_sec * sample_rate
    cuts = sorted({0, *(int(t) for i, _ in lanes for t in np.nonzero(perf.cc_changes()[i])[0])})
    starts = [min(int(round(t * step)), n_samples) for t in cuts] + [n_samples]
    events = midi_events(perf, sample_rate, skip_cc={c for c in perf.cc_numbers if c in cc_map})
    out = []
    for k, t in enumerate(cuts):
        lo, hi = starts[k], starts[k + 1]
        if hi <= lo and k < len(cuts) - 1:
            continue
        last = k == len(cuts) - 1
        ev = [(b, sec - lo / sample_rate) for b, sec in events
              if lo <= round(sec * sample_rate) < hi or (last and round(sec * sample_rate) >= hi)]
        out.append({"start": lo, "stop": max(hi, lo), "params": {p: float(curves[i, t]) for i, p in lanes},
                    "events": ev})
    return out


def render_vst3(perf: Performance, sample_rate: int, plugin_path, n_samples: int,
                cc_map: dict[int, str] | None = None) -> np.ndarray:
    """Render on a VST3 instrument: float32 mono (n_samples,) (channels averaged). With ``cc_map``, mapped
    lanes set the named plugin parameters (``parameter_segments``); an unknown name raises ValueError."""
    plugin = load_instrument(plugin_path)
    if cc_map:
        known = set(plugin.parameters)
        bad = sorted({p for p in cc_map.values() if p not in known})
        if bad:
            raise ValueError(f"the plugin has no parameter {', '.join(bad)}; its parameters are {sorted(known)}")
        parts = []
        for k, seg in enumerate(parameter_segments(perf, cc_map, sample_rate, n_samples)):
            for name, value in seg["params"].items():
                plugin.parameters[name].raw_value = value
            n = seg["stop"] - seg["start"]
            if n <= 0:
                continue
            parts.append(_mono(plugin(seg["events"], duration=n / sample_rate, sample_rate=sample_rate,
                                      num_channels=2, buffer_size=BLOCK_SIZE, reset=k == 0), n))
        mono = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    else:
        mono = _mono(plugin(midi_events(perf, sample_rate), duration=n_samples / sample_rate,
                            sample_rate=sample_rate, num_channels=2, buffer_size=BLOCK_SIZE, reset=True), n_samples)
    out = np.zeros(n_samples, np.float32)
    out[:min(n_samples, mono.shape[-1])] = mono[:n_samples]
    return out


def _mono(audio, n: int) -> np.ndarray:
    audio = np.asarray(audio, np.float32)
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    out = np.zeros(n, np.float32)
    out[:min(n, mono.shape[-1])] = mono[:n]
    return out
