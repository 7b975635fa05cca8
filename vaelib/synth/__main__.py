"""CLI: render a MIDI file to a WAV with the built-in voice (or a VST3 instrument).

    python -m vaelib.synth.__main__ IN.mid OUT.wav [--sample-rate 22050] [--backend va] [--plugin PATH] [--cc-map MAP.json]

The MIDI file is read with ``vaelib.data.midi.read_midi`` into 4-bar windows with every CC number its bass part
uses; the windows are rendered one by one and concatenated in order (each window starts from its own
controller state, so a long file renders as the sequence of windows the model sees). ``--first`` renders
only the first window. ``--cc-map`` names the synth parameter of each CC number (``vaelib.controllers``;
default: the built-in table); a CC the map does not name is ignored by the built-in synth, with a warning.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from vaelib.controllers import load_cc_map
from vaelib.data.midi import read_midi, used_controllers
from vaelib.synth import render
from vaelib.synth.audio import write_wav


def render_midi(in_path, sample_rate: int = 22050, backend: str = "va", plugin_path=None,
                first_only: bool = False, cc_map: dict[int, str] | None = None) -> np.ndarray:
    """float32 mono audio of a MIDI file: its windows rendered and concatenated (T,)."""

    perfs = used_controllers(read_midi(in_path, cc_numbers=tuple(range(128))))
    if not perfs:
        raise ValueError(f"{in_path}: no notes to render")
    if first_only:
        perfs = perfs[:1]
    return np.concatenate([render(p, sample_rate=sample_rate, backend=backend, plugin_path=plugin_path,
                                  cc_map=cc_map) for p in perfs])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vaelib.synth.__main__", description=__doc__.splitlines()[0])
    ap.add_argument("midi", type=Path, help="input .mid")
    ap.add_argument("wav", type=Path, help="output .wav (16-bit PCM, mono)")
    ap.add_argument("--sample-rate", type=int, default=22050, help="Hz; 22050 for metrics, 44100/48000 to listen")
    ap.add_argument("--backend", default="va", choices=("va", "vst3"), help="built-in voice or a VST3 instrument")
    ap.add_argument("--plugin", type=Path, default=None, help="path to a .vst3 instrument (backend vst3)")
    ap.add_argument("--first", action="store_true", help="render only the first 4-bar window")
    ap.add_argument("--cc-map", type=Path, default=None,
                    help="JSON CC map: CC number -> synth parameter (built-in) or plugin parameter name (vst3)")
    args = ap.parse_args(argv)

    try:
        cc_map = None if args.cc_map is None else load_cc_map(args.cc_map, builtin=args.backend == "va")
        audio = render_midi(args.midi, args.sample_rate, args.backend, args.plugin, args.first, cc_map)
    except (OSError, ValueError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    write_wav(args.wav, audio, args.sample_rate)
    print(f"{args.wav}: {audio.size / args.sample_rate:.2f} s at {args.sample_rate} Hz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
