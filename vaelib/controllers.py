"""The default controller table, and the CC map: which built-in synth parameter each CC number drives.

The tokenizer models the controllers of a data folder's ``tokenizer.json`` (``cc_numbers``); this table is the
default set (``curate`` without ``--cc``) and names the built-in synth parameter of each. The synthetic corpus
writes motion for each parameter, and ``vaelib.synth`` maps each value (0..127) onto the parameter its CC map
names (``DEFAULT_CC_MAP`` unless a map file is given).

| CC | name / synth parameter | what it moves (0 -> 127)                                 | default |
|----|------------------------|----------------------------------------------------------|---------|
| 74 | cutoff                 | ladder low-pass cutoff, 40 Hz -> 12 kHz (exponential)     | 64      |
| 71 | resonance              | ladder resonance, 0 -> 0.95 of self-oscillation          | 20      |
| 70 | drive                  | pre-filter drive / tanh saturation, 1x -> 8x gain        | 16      |
| 79 | env_amount             | filter-envelope depth on cutoff, 0 -> +5 octaves         | 32      |
|  1 | lfo_depth              | synth LFO depth on cutoff, 0 -> +-3 octaves              | 0       |
| 76 | lfo_rate               | synth LFO rate, 0.1 Hz -> 20 Hz (exponential)            | 64      |
| 77 | osc_mix                | oscillator shape, saw (0) -> square (127); sub follows   | 0       |
| 94 | detune                 | second-saw detune, 0 -> 50 cents (the "reese")           | 0       |
|  5 | glide                  | portamento time on legato notes, 0 -> 300 ms             | 0       |
| 11 | volume                 | expression: output gain, -inf -> 0 dB (squared law)      | 100     |

The volume lane is CC11 (expression), the performance-dynamics convention; CC7 is the channel volume a DAW ties to
the track fader. A lane that is never set in a window counts as its default (CC-ME, synth, plots); a CC number
outside the table defaults to 64.

A CC map file is JSON: ``{"cc_map": {"74": "cutoff", "16": "resonance", ...}}`` (or the bare inner object), CC
number -> parameter name. The built-in synth takes names from ``SYNTH_PARAMS``; the VST3 backend takes the
plugin's own parameter names from the same file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Controller:
    number: int  # MIDI CC number
    name: str  # short name, used in plots; also the built-in synth parameter it drives by default
    default: int  # value assumed when a lane was never set
    meaning: str  # the synth parameter it moves


CONTROLLERS: tuple[Controller, ...] = (  # lane order = token layout: keep it when changing a number
    Controller(74, "cutoff", 64, "ladder low-pass cutoff, 40 Hz -> 12 kHz (exp)"),
    Controller(71, "resonance", 20, "ladder resonance, 0 -> 0.95"),
    Controller(70, "drive", 16, "pre-filter drive, 1x -> 8x"),
    Controller(79, "env_amount", 32, "filter-envelope depth, 0 -> +5 octaves"),
    Controller(1, "lfo_depth", 0, "synth LFO depth on cutoff, 0 -> +-3 octaves"),
    Controller(76, "lfo_rate", 64, "synth LFO rate, 0.1 -> 20 Hz (exp)"),
    Controller(77, "osc_mix", 0, "saw (0) -> square (127)"),
    Controller(94, "detune", 0, "second-saw detune, 0 -> 50 cents"),
    Controller(5, "glide", 0, "portamento on legato notes, 0 -> 300 ms"),
    Controller(11, "volume", 100, "expression: output gain, squared law"),
)

DEFAULT_CC_NUMBERS: tuple[int, ...] = tuple(c.number for c in CONTROLLERS)
BY_NUMBER: dict[int, Controller] = {c.number: c for c in CONTROLLERS}
BY_NAME: dict[str, Controller] = {c.name: c for c in CONTROLLERS}

SYNTH_PARAMS: tuple[str, ...] = tuple(c.name for c in CONTROLLERS)  # the built-in synth's parameters
PARAM_DEFAULTS: dict[str, int] = {c.name: c.default for c in CONTROLLERS}  # a parameter no lane drives
DEFAULT_CC_MAP: dict[int, str] = {c.number: c.name for c in CONTROLLERS}


def default_value(number: int) -> int:
    """Value a never-set lane counts as (64 for controllers outside the table)."""
    c = BY_NUMBER.get(number)
    return c.default if c is not None else 64


def name_of(number: int) -> str:
    c = BY_NUMBER.get(number)
    return c.name if c is not None else f"cc{number}"


def parse_cc_map(obj, builtin: bool = True) -> dict[int, str]:
    """CC number -> parameter name from a map file's JSON object (``{"cc_map": {...}}`` or the bare object).

    ``builtin`` checks the names against ``SYNTH_PARAMS`` (the built-in synth); the VST3 backend passes False.
    Raises ValueError on a CC number outside 0..127 or an unknown parameter name."""
    if isinstance(obj, dict) and isinstance(obj.get("cc_map"), dict):
        obj = obj["cc_map"]
    if not isinstance(obj, dict):
        raise ValueError("a CC map is a JSON object {\"<cc number>\": \"<parameter>\", ...}")
    out: dict[int, str] = {}
    for k, v in obj.items():
        try:
            n = int(k)
        except (TypeError, ValueError):
            raise ValueError(f"CC map key {k!r} is not a CC number") from None
        if not 0 <= n <= 127:
            raise ValueError(f"CC map key {n} is outside 0..127")
        if not isinstance(v, str) or not v:
            raise ValueError(f"CC map value for CC{n} must be a parameter name, got {v!r}")
        if builtin and v not in SYNTH_PARAMS:
            raise ValueError(f"CC{n} -> {v!r}: the built-in synth's parameters are {', '.join(SYNTH_PARAMS)}")
        out[n] = v
    return out


def load_cc_map(path, builtin: bool = True) -> dict[int, str]:
    """Read a CC map file (JSON, see the module doc)."""
    return parse_cc_map(json.loads(Path(path).read_text()), builtin=builtin)


def cc_map_json(cc_map: dict[int, str] | None = None) -> str:
    """A CC map as map-file JSON (``DEFAULT_CC_MAP`` when None)."""
    m = DEFAULT_CC_MAP if cc_map is None else cc_map
    return json.dumps({"cc_map": {str(k): v for k, v in m.items()}}, indent=2) + "\n"


def describe(cc_numbers, cc_map: dict[int, str] | None = None) -> list[dict]:
    """One dict per controller in lane order: ``cc``, ``name``, ``default`` and the ``synth_param`` it drives
    (None when the map leaves it unmapped)."""
    m = DEFAULT_CC_MAP if cc_map is None else cc_map
    return [{"cc": int(c), "name": name_of(int(c)), "default": default_value(int(c)), "synth_param": m.get(int(c))}
            for c in cc_numbers]
