"""The 10 monitored controllers and what each one means to the built-in synth.

This table is the single source of truth for the CC -> synth-parameter mapping: the
tokenizer monitors these numbers by default, the synthetic corpus writes motion for
each, and ``vaelib.synth`` maps each value (0..127) onto the parameter named here.

| CC | name            | synth parameter (0 -> 127)                               | default |
|----|-----------------|----------------------------------------------------------|---------|
| 74 | cutoff          | ladder low-pass cutoff, 40 Hz -> 12 kHz (exponential)     | 64      |
| 71 | resonance       | ladder resonance, 0 -> 0.95 of self-oscillation          | 20      |
| 70 | drive           | pre-filter drive / tanh saturation, 1x -> 8x gain        | 16      |
| 79 | env_amount      | filter-envelope depth on cutoff, 0 -> +5 octaves         | 32      |
|  1 | lfo_depth       | synth LFO depth on cutoff, 0 -> +-3 octaves              | 0       |
| 76 | lfo_rate        | synth LFO rate, 0.1 Hz -> 20 Hz (exponential)            | 64      |
| 77 | osc_mix         | oscillator shape, saw (0) -> square (127); sub follows   | 0       |
| 94 | detune          | second-saw detune, 0 -> 50 cents (the "reese")           | 0       |
|  5 | glide           | portamento time on legato notes, 0 -> 300 ms             | 0       |
|  7 | volume          | output gain, -inf -> 0 dB (squared law)                  | 100     |

A lane that is never set in a window counts as its default (CC-ME, synth, plots).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Controller:
    number: int  # MIDI CC number
    name: str  # short name, used in plots and in synth controls
    default: int  # value assumed when a lane was never set
    meaning: str  # the synth parameter it moves


CONTROLLERS: tuple[Controller, ...] = (
    Controller(74, "cutoff", 64, "ladder low-pass cutoff, 40 Hz -> 12 kHz (exp)"),
    Controller(71, "resonance", 20, "ladder resonance, 0 -> 0.95"),
    Controller(70, "drive", 16, "pre-filter drive, 1x -> 8x"),
    Controller(79, "env_amount", 32, "filter-envelope depth, 0 -> +5 octaves"),
    Controller(1, "lfo_depth", 0, "synth LFO depth on cutoff, 0 -> +-3 octaves"),
    Controller(76, "lfo_rate", 64, "synth LFO rate, 0.1 -> 20 Hz (exp)"),
    Controller(77, "osc_mix", 0, "saw (0) -> square (127)"),
    Controller(94, "detune", 0, "second-saw detune, 0 -> 50 cents"),
    Controller(5, "glide", 0, "portamento on legato notes, 0 -> 300 ms"),
    Controller(7, "volume", 100, "output gain, squared law"),
)

DEFAULT_CC_NUMBERS: tuple[int, ...] = tuple(c.number for c in CONTROLLERS)
BY_NUMBER: dict[int, Controller] = {c.number: c for c in CONTROLLERS}
BY_NAME: dict[str, Controller] = {c.name: c for c in CONTROLLERS}


def default_value(number: int) -> int:
    """Value a never-set lane counts as (64 for controllers outside the table)."""
    c = BY_NUMBER.get(number)
    return c.default if c is not None else 64


def name_of(number: int) -> str:
    c = BY_NUMBER.get(number)
    return c.name if c is not None else f"cc{number}"
