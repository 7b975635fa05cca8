"""MIDI ingest with CCs: ``read_midi`` vs ``muspy.read_midi`` on the same folder, same run. Goal: >= 50x.

Folder: 200 dense synthetic basslines written with ``write_midi`` (one 4-bar window each, every
monitored CC moving) plus music21's ``test04.mid`` (18 tracks, 35 bass windows, ~3,000 CCs).
Ours: the whole job, file -> bass windows as ``Performance`` with all monitored CCs. Peer:
``muspy.read_midi`` (file -> ``muspy.Music`` with CCs as annotations, no windows yet, so the peer
does less). Also reported: symusic's bare parse (``Score(path)``, tracks with notes only, no
windows), the floor any symusic-based reader would pay. One core; best of 20 rounds for the
millisecond-long ones (ours, symusic), of 5 for muspy's second-long rounds (shared, noisy machine).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import muspy
import symusic

from ._util import best_time, write_result
from vaelib.data.midi import read_midi
from vaelib.data.midi_write import write_midi
from vaelib.data.synthetic import generate

TEST04 = Path(importlib.util.find_spec("music21").submodule_search_locations[0]) / "midi/testPrimitive/test04.mid"
N_DENSE = 200


def test_midi_ingest_vs_muspy(tmp_path):
    dense = generate(N_DENSE, seed=11, complexity=0.9)
    paths = [write_midi(p, tmp_path / f"dense_{i:04d}.mid") for i, p in enumerate(dense)]
    result = {"n_files": len(paths) + 1, "goal_ratio": 50.0}
    read_midi(paths[0])  # numba: load the compiled scanner outside the timing

    for label, files in (("dense", paths), ("test04", [TEST04]), ("all", paths + [TEST04])):
        ours = best_time(lambda: [read_midi(p) for p in files], repeat=20)
        peer = best_time(lambda: [muspy.read_midi(p) for p in files], repeat=5)
        bare = best_time(lambda: [symusic.Score(p) for p in files], repeat=20)
        result[label] = {"files": len(files), "ours_s": ours, "muspy_s": peer, "symusic_parse_s": bare,
                         "ours_files_per_s": len(files) / ours, "muspy_files_per_s": len(files) / peer,
                         "ratio_vs_muspy": peer / ours, "ratio_vs_symusic_parse": bare / ours}
    n_windows = sum(len(read_midi(p)) for p in paths + [TEST04])
    n_cc = sum(int(w.cc_changes().sum()) for p in paths + [TEST04] for w in read_midi(p))
    result.update(windows=n_windows, cc_changes=n_cc, ratio=result["all"]["ratio_vs_muspy"])
    result["goal_met"] = result["ratio"] >= result["goal_ratio"]
    write_result("midi_ingest", result)
    print({k: (round(v["ratio_vs_muspy"], 1) if isinstance(v, dict) else v) for k, v in result.items()})
    assert n_windows == N_DENSE + 35 and n_cc > 0
