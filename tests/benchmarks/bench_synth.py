"""Synth speed vs a block-wise pedalboard LadderFilter render, render + MR-STFT throughput, MR-STFT calibration.

Writes results/benchmarks/synth.json. One core: run with OMP_NUM_THREADS=1 (tests/conftest.py sets it).

Peer: the same performance's controls (``get_controls``), a vectorised numpy saw at the note pitches gated by
the notes, then ``pedalboard.LadderFilter`` (LPF24) processed block by block with cutoff / resonance / drive
set per block and the filter state kept (``reset=False``), times the volume curve. It is a cheaper voice than
ours (no BLEP, sub, detune, envelopes, LFO), so the ratio flatters the peer. Block 32 = our control rate;
block 256 = a coarser, cheaper host-style automation rate.
"""
from __future__ import annotations

import os
from dataclasses import replace

import numpy as np

from ._util import best_time, write_result
from vaelib.evaluation.mrstft import _CACHE, mr_stft, mr_stft_performances
from vaelib.synth import get_controls, render
from vaelib.data.synthetic import generate

CLIP_SEC = 7.0
RESULT: dict = {}


def clip(index: int = 0):
    """A synthetic 4-bar performance retimed to last exactly CLIP_SEC (128 steps)."""
    p = generate(index + 1, seed=0)[index]
    return replace(p, tempo_bpm=60.0 * 4 * p.n_bars / CLIP_SEC)


def render_peer(perf, sample_rate: int, block: int) -> np.ndarray:
    """Oscillator + pedalboard LadderFilter, cutoff/resonance/drive set once per ``block`` samples."""
    import pedalboard

    c = get_controls(perf, sample_rate=sample_rate)
    n, hop = c["n_samples"], c["hop"]
    f0 = np.zeros(n)
    gate = np.zeros(n)
    for on, off, pitch in zip(c["note_on"], c["note_off"], c["note_pitch"]):
        f0[on:] = 440.0 * 2 ** ((pitch - 69) / 12)
        gate[on:off] = 1.0
    saw = (2.0 * (np.cumsum(f0 / sample_rate) % 1.0) - 1.0).astype(np.float32)
    frame = np.minimum(np.arange(n) // hop, len(c["gain"]) - 1)
    ladder = pedalboard.LadderFilter(mode=pedalboard.LadderFilter.Mode.LPF24)
    out = np.empty(n, np.float32)
    for start in range(0, n, block):
        k = start // hop
        ladder.cutoff_hz = float(min(c["cutoff_hz"][k], 0.45 * sample_rate))
        ladder.resonance = float(c["resonance"][k])
        ladder.drive = float(c["drive"][k])
        seg = saw[start:start + block][None, :]
        out[start:start + block] = ladder.process(seg, sample_rate, buffer_size=block, reset=False)[0]
    return out * (gate * c["gain"][frame]).astype(np.float32)


def interleaved_best(fns: dict, rounds: int) -> dict:
    """Best time of each function, timed in alternation so that the shared machine's load hits all alike."""
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            best[name] = min(best[name], best_time(fn, repeat=1))
    return best


def test_render_speed_vs_pedalboard_ladder():
    perf = clip()
    for sr in (22050, 44100):
        fns = {"ours": lambda: render(perf, sample_rate=sr),
               "peer_block32": lambda: render_peer(perf, sr, 32),
               "peer_block256": lambda: render_peer(perf, sr, 256)}
        for fn in fns.values():
            fn()  # compile / warm caches
        best = interleaved_best(fns, rounds=15)
        row = {"ours_sec": best["ours"], "ours_rtf": CLIP_SEC / best["ours"]}
        for block in (32, 256):
            peer = best[f"peer_block{block}"]
            row[f"peer_block{block}_sec"] = peer
            row[f"peer_block{block}_rtf"] = CLIP_SEC / peer
            row[f"speedup_vs_block{block}"] = peer / best["ours"]
        RESULT[f"render_{sr}"] = row
        print(f"{sr} Hz: ours {row['ours_rtf']:.0f}x real time; speed-up vs pedalboard block32 "
              f"{row['speedup_vs_block32']:.1f}x, block256 {row['speedup_vs_block256']:.1f}x")
    RESULT["goal"] = ">= 200x real time on one core and faster than the peer"
    write_result("synth", RESULT)


def test_render_plus_mrstft_pairs_per_second():
    refs = [clip(i) for i in range(12)]
    ests = [clip(i + 12) for i in range(12)]
    mr_stft_performances(refs[:1], ests[:1], n_workers=1)  # warm up
    _CACHE.clear()
    cold = best_time(lambda: (_CACHE.clear(), mr_stft_performances(refs, ests, n_workers=1)), repeat=3)
    warm = best_time(lambda: mr_stft_performances(refs, ests, n_workers=1), repeat=3)  # references cached
    RESULT["pairs_per_sec_one_core"] = {"uncached": len(refs) / cold, "reference_cached": len(refs) / warm,
                                        "sample_rate": 22050, "clip_sec": CLIP_SEC, "goal": ">= 10 per core"}
    print(f"render + MR-STFT: {len(refs) / cold:.1f} pairs/s/core ({len(refs) / warm:.1f} with cached references)")
    write_result("synth", RESULT)


def test_mrstft_calibration():
    """The issue's reference points, measured on this synth's renders (7 s, 22.05 kHz)."""
    audio = [render(clip(i)) for i in range(9)]
    a = audio[0]
    shift = int(round(0.001 * 22050))
    rng = np.random.default_rng(0)
    rms = float(np.sqrt(np.mean(a.astype(np.float64) ** 2)))
    different = [mr_stft(audio[j], audio[i]) for i in range(0, 9, 2) for j in range(1, 9, 2)]
    cal = {
        "identical": mr_stft(a, a),
        "minus_6db": float(np.mean([mr_stft(0.5 * x, x) for x in audio])),
        "shift_1ms": float(np.mean([mr_stft(np.concatenate([np.zeros(shift, np.float32), x[:-shift]]), x)
                                    for x in audio])),
        "different_min": float(np.min(different)), "different_max": float(np.max(different)),
        "different_mean": float(np.mean(different)),
        "noise_at_ref_rms": mr_stft(rng.standard_normal(a.size).astype(np.float32) * rms, a),
        "noise_unit_std": mr_stft(np.clip(rng.standard_normal(a.size), -1, 1).astype(np.float32), a),
        "silent_target": mr_stft(a, np.zeros_like(a)),
        "issue_reference": {"identical": 0, "minus_6db": 0.67, "shift_1ms": 0.31, "different": [3.5, 6.6],
                            "noise": 10.3},
    }
    assert cal["identical"] == 0.0 and np.isnan(cal["silent_target"])
    cal["silent_target"] = "nan (guarded; raw auraloss ~2e4)"  # strict JSON has no NaN
    RESULT["mrstft_calibration"] = cal
    print("MR-STFT calibration:", {k: (round(v, 3) if isinstance(v, float) else v) for k, v in cal.items()})
    RESULT["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    write_result("synth", RESULT)
