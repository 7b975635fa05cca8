"""``Performance`` -> MIDI file, and the names files are written under.

``write_midi``: one mido track on channel 1 with tempo, 4/4, program 38, a text meta event naming the controllers,
the CC snapshot at step 0 and every later CC change, written atomically, with a sidecar ``<stem>.json`` beside it
that names each CC number's controller and the synth parameter it drives, so a producer can map them in a DAW.
Reading is ``vaelib.data.midi``.
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path

import numpy as np

from vaelib.atomic import atomic_write, atomic_write_text
from vaelib.controllers import DEFAULT_CC_MAP, describe
from vaelib.data.performance import Performance

WRITE_PROGRAM = 38  # GM "Synth Bass 1"
WRITE_TICKS_PER_STEP = 60  # 480 ticks per quarter at 32 steps per bar


# ---------------------------------------------------------------------------- writing
def controllers_text(perf: Performance, cc_map: dict[int, str] | None = None) -> str:
    """The text meta event of a written file: ``vaelib controllers: CC74=cutoff CC71=resonance ...``."""
    return "vaelib controllers: " + " ".join(f"CC{d['cc']}={d['synth_param'] or d['name']}"
                                             for d in describe(perf.cc_numbers, cc_map))


def sidecar_path(path) -> Path:
    """``x.mid`` -> ``x.json``: the controller sheet written beside each MIDI file."""
    return Path(path).with_suffix(".json")


def write_midi(perf: Performance, path, cc_map: dict[int, str] | None = None, sidecar: bool = True) -> Path:
    """Write ``perf`` as a type-0 MIDI file (channel 1, program 38) with tempo, 4/4, the CC state
    at step 0 and every later CC change; atomically (temporary file, fsync, rename). Within a
    step the order is note-offs, CCs, note-ons, as in the tokenizer.

    The controllers are named in a text meta event and, with ``sidecar``, in ``sidecar_path(path)``:
    ``{"midi", "channel", "program", "controllers": [{"cc", "name", "default", "synth_param"}, ...],
    "cc_map"}`` with ``cc_map`` (CC number -> synth parameter; default ``DEFAULT_CC_MAP``)."""
    import json

    import mido

    path = Path(path)
    tps = WRITE_TICKS_PER_STEP  # integer ticks per step; a quarter note is steps_per_bar / 4 steps
    tpq = tps * perf.steps_per_bar // 4
    events = []  # (tick, order within the tick, message)
    for on, dur, pitch, vel in perf.notes.tolist():
        events.append((on * tps, 2, mido.Message("note_on", note=pitch, velocity=vel, channel=0)))
        events.append(((on + dur) * tps, 0, mido.Message("note_off", note=pitch, velocity=0, channel=0)))
    changes = perf.cc_changes()
    for lane, t in zip(*np.nonzero(changes)):
        events.append((int(t) * tps, 1, mido.Message("control_change", control=perf.cc_numbers[lane],
                                                     value=int(perf.cc[lane, t]), channel=0)))
    events.sort(key=lambda e: (e[0], e[1]))  # stable: lanes stay in cc_numbers order
    track = mido.MidiTrack([
        mido.MetaMessage("track_name", name="bass", time=0),
        mido.MetaMessage("text", text=controllers_text(perf, cc_map), time=0),
        mido.MetaMessage("set_tempo", tempo=int(round(mido.bpm2tempo(perf.tempo_bpm))), time=0),
        mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
        mido.Message("program_change", program=WRITE_PROGRAM, channel=0, time=0)])
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=max(0, perf.n_steps * tps - now)))
    mf = mido.MidiFile(type=0, ticks_per_beat=tpq, tracks=[track])
    if sidecar:
        m = DEFAULT_CC_MAP if cc_map is None else cc_map
        sheet = {"midi": path.name, "channel": 1, "program": WRITE_PROGRAM,
                 "controllers": describe(perf.cc_numbers, m), "cc_map": {str(k): v for k, v in m.items()}}
        atomic_write_text(sidecar_path(path), json.dumps(sheet, indent=2) + "\n")
    return atomic_write(path, lambda f: mf.save(file=f))


# ---------------------------------------------------------------------------- names
def clean_name(text: str) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9._-]`` replaced by ``_`` (no hash: for names the
    caller already made unique, e.g. generated pieces). ``safe_name`` is for arbitrary input paths."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def safe_name(path_or_str, max_len: int = 48) -> str:
    """A file-system-safe output name for a MIDI path: ``<clean stem>-<10 hex of sha1(full path)>``.

    Only ``[A-Za-z0-9._-]`` survive (no separators, no ``..``, no leading dot or dash); the hash of
    the full original string keeps ``a/x.mid`` and ``b/x.mid`` (or ``x?.mid`` and ``x*.mid``) apart."""
    raw = os.fspath(path_or_str) if isinstance(path_or_str, os.PathLike) else str(path_or_str)
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "surrogateescape")
    digest = hashlib.sha1(raw.encode("utf-8", "surrogateescape")).hexdigest()[:10]
    base = re.split(r"[\\/]", raw)[-1]
    stem = base.rsplit(".", 1)[0] if "." in base.lstrip(".") else base
    stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem.replace(".", "_")).strip("_-")[:max_len].strip("_-")
    return f"{stem or 'midi'}-{digest}"
