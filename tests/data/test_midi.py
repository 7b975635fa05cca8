"""MIDI I/O: write_midi read back by mido and pretty_midi, read_midi round trip, channel merging,
the bass pick on a real file (music21's test04.mid) against an independent mido reading, safe_name."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest

from vaelib.controllers import DEFAULT_CC_NUMBERS
from vaelib.data.midi import MidiReadError, read_midi
from vaelib.data.midi_write import safe_name, write_midi
from vaelib.data.performance import Performance
from vaelib.data.synthetic import generate

TEST04 = Path(importlib.util.find_spec("music21").submodule_search_locations[0]) / "midi/testPrimitive/test04.mid"


def random_performance(seed: int, n_steps: int = 128) -> Performance:
    """Random notes (monophonic and chords, legato, retriggers) and sparse random CC changes."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    notes = np.stack([rng.integers(0, n_steps, n), rng.integers(1, 40, n), rng.integers(20, 90, n),
                      rng.integers(1, 128, n)], axis=1)
    k = int(rng.integers(0, 200))
    events = np.stack([rng.integers(0, n_steps, k), rng.integers(0, len(DEFAULT_CC_NUMBERS), k),
                       rng.integers(0, 128, k)], axis=1)
    initial = np.where(rng.random(len(DEFAULT_CC_NUMBERS)) < 0.5, rng.integers(0, 128, len(DEFAULT_CC_NUMBERS)), -1)
    return Performance.from_events(notes, events[np.argsort(events[:, 0], kind="stable")], n_steps=n_steps,
                                   initial_cc=initial, tempo_bpm=float(rng.uniform(60, 200)))


def performances():
    return generate(6, seed=3) + [random_performance(s) for s in range(6)]


def expected_cc_events(perf: Performance):
    """[(time s, number, value)] of every CC change, the step-0 snapshot included."""
    lanes, steps = np.nonzero(perf.cc_changes())
    return sorted((round(t * perf.step_sec, 6), perf.cc_numbers[i], int(perf.cc[i, t])) for i, t in zip(lanes, steps))


def expected_notes(perf: Performance):
    return sorted((round(o * perf.step_sec, 6), round((o + d) * perf.step_sec, 6), int(p), int(v))
                  for o, d, p, v in perf.notes)


def assert_events_match(got, expected, n_times):
    """Same events; times (the first ``n_times`` fields, seconds) within 0.1 ms, because the file's
    tempo is rounded to whole microseconds per quarter."""
    assert len(got) == len(expected)
    assert [g[n_times:] for g in got] == [e[n_times:] for e in expected]
    if got:
        np.testing.assert_allclose([g[:n_times] for g in got], [e[:n_times] for e in expected], atol=1e-4)


@pytest.mark.parametrize("i", range(12))
def test_write_midi_read_back_by_mido(tmp_path, i):
    perf = performances()[i]
    path = write_midi(perf, tmp_path / "x.mid")
    mf = mido.MidiFile(path)
    tempos = [m.tempo for t in mf.tracks for m in t if m.type == "set_tempo"]
    assert len(tempos) == 1 and 60e6 / tempos[0] == pytest.approx(perf.tempo_bpm, rel=1e-5)
    sec_per_tick = mido.tick2second(1, mf.ticks_per_beat, tempos[0])
    tick, ccs, on, notes = 0, [], {}, []
    for m in mf.tracks[0]:
        tick += m.time
        if m.type == "control_change":
            ccs.append((round(tick * sec_per_tick, 6), m.control, m.value))
        elif m.type == "note_on" and m.velocity > 0:
            on[m.note] = (tick, m.velocity)
        elif m.type in ("note_off", "note_on"):
            t0, v = on.pop(m.note)
            notes.append((round(t0 * sec_per_tick, 6), round(tick * sec_per_tick, 6), m.note, v))
    assert not on
    assert_events_match(sorted(ccs), expected_cc_events(perf), n_times=1)
    assert_events_match(sorted(notes), expected_notes(perf), n_times=2)
    assert [m.program for m in mf.tracks[0] if m.type == "program_change"] == [38]


@pytest.mark.parametrize("i", range(12))
def test_write_midi_read_back_by_pretty_midi(tmp_path, i):
    perf = performances()[i]
    pm = pretty_midi.PrettyMIDI(str(write_midi(perf, tmp_path / "x.mid")))
    assert len(pm.instruments) == 1 and pm.instruments[0].program == 38 and not pm.instruments[0].is_drum
    inst = pm.instruments[0]
    got_notes = sorted((round(n.start, 6), round(n.end, 6), n.pitch, n.velocity) for n in inst.notes)
    got_cc = sorted((round(c.time, 6), c.number, c.value) for c in inst.control_changes)
    assert_events_match(got_notes, expected_notes(perf), n_times=2)
    assert_events_match(got_cc, expected_cc_events(perf), n_times=1)
    ts = pm.time_signature_changes
    assert (ts[0].numerator, ts[0].denominator) == (4, 4)


def test_write_then_read_midi_round_trip(tmp_path):
    for i, perf in enumerate(performances()):
        path = write_midi(perf, tmp_path / f"p{i}.mid")
        (back,) = read_midi(path)
        assert back == perf
        assert back.source == str(path) and back.style == ""
    # no temp files left; each MIDI file has its controller sheet beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"p{i}.{x}" for i in range(12) for x in ("mid", "json"))


def test_write_midi_other_grid(tmp_path):
    perf = random_performance(7, n_steps=64)
    perf = Performance(perf.notes, perf.cc, tempo_bpm=perf.tempo_bpm, steps_per_bar=16)
    (back,) = read_midi(write_midi(perf, tmp_path / "g.mid"), n_bars=4, steps_per_bar=16)
    assert back == perf


def reference_windows(path, channel, cc_numbers, n_bars=4, steps_per_bar=32):
    """An independent reading with mido: merge the channel's events over all tracks, pair notes
    (a same-pitch note-on ends the sounding note), round to the grid, cut 4/4 windows."""
    mf = mido.MidiFile(path)
    tps = mf.ticks_per_beat * 4 / steps_per_bar
    T = n_bars * steps_per_bar
    evs, tempos = [], []
    for ti, track in enumerate(mf.tracks):
        tick = 0
        for j, m in enumerate(track):
            tick += m.time
            if m.type == "set_tempo":
                tempos.append((tick, ti, j, m.tempo))
            elif getattr(m, "channel", None) == channel:
                evs.append((tick, ti, j, m))
    evs.sort(key=lambda e: e[:3])
    tempos.sort()
    notes, sounding, ccs = [], {}, []
    for tick, _, _, m in evs:
        if m.type in ("note_on", "note_off"):
            if m.note in sounding:
                notes[sounding.pop(m.note)][1] = tick
            if m.type == "note_on" and m.velocity > 0:
                sounding[m.note] = len(notes)
                notes.append([tick, None, m.note, m.velocity])
        elif m.type == "control_change" and m.control in cc_numbers:
            ccs.append((round(tick / tps), cc_numbers.index(m.control), m.value))
    out = {}
    for on, off, p, v in notes:
        s = round(on / tps)
        out.setdefault(s // T, []).append((s % T, max(1, round(off / tps) - s) if off is not None else T, p, v))
    result = []
    for w in sorted(out):
        init = np.full(len(cc_numbers), -1)
        for s, lane, val in ccs:
            if s < w * T:
                init[lane] = val
        ev = [(s - w * T, lane, val) for s, lane, val in ccs if w * T <= s < (w + 1) * T]
        bpm = 60e6 / [t for t in tempos if t[0] <= w * T * tps][-1][3]
        result.append(Performance.from_events(out[w], ev, n_steps=T, cc_numbers=cc_numbers, initial_cc=init,
                                              tempo_bpm=bpm, steps_per_bar=steps_per_bar))
    return result


def test_test04_bass_windows_match_an_independent_mido_reading():
    cc_numbers = DEFAULT_CC_NUMBERS + (7, 10)  # test04's bass track also writes channel volume and pan
    got = read_midi(TEST04, cc_numbers=cc_numbers)
    ref = reference_windows(TEST04, channel=4, cc_numbers=cc_numbers)  # track "Bass" (not "Bassoon")
    assert len(got) == len(ref) == 35
    assert all(g == r for g, r in zip(got, ref))
    assert all((w.cc >= 0).any() for w in got)  # every window carries CC state
    assert sum(int(w.cc_changes().sum()) for w in got) > 0
    assert np.median(np.concatenate([w.notes[:, 2] for w in got])) < 45  # the double bass, median ~38


def test_test04_read_with_every_cc(tmp_path):
    windows = read_midi(TEST04, cc_numbers=tuple(range(128)))
    assert {n for w in windows for n in np.array(w.cc_numbers)[(w.cc >= 0).any(1)]} >= {0, 1, 6, 7, 10, 11, 32, 91}


def _track(events, name=None):
    """mido track from (abs tick, message) pairs."""
    t = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)] if name else [])
    now = 0
    for tick, m in sorted(events, key=lambda e: e[0]):
        t.append(m.copy(time=tick - now))
        now = tick
    return t


def test_cc_only_track_on_the_bass_channel_is_merged(tmp_path):
    tpq = 96  # 12 ticks per 1/32 step
    bass = [(0, mido.Message("program_change", program=33, channel=2))]
    piano = []
    for k in range(16):
        bass += [(k * 48, mido.Message("note_on", note=36 + k % 3, velocity=90, channel=2)),
                 (k * 48 + 24, mido.Message("note_off", note=36 + k % 3, velocity=0, channel=2))]
        piano += [(k * 48, mido.Message("note_on", note=72, velocity=60, channel=0)),
                  (k * 48 + 40, mido.Message("note_off", note=72, velocity=0, channel=0)),
                  (k * 48, mido.Message("control_change", control=74, value=1, channel=0))]
    cc_only = [(12 * k, mido.Message("control_change", control=74, value=(5 * k) % 128, channel=2)) for k in range(40)]
    other_channel = [(12 * k, mido.Message("control_change", control=71, value=k, channel=5)) for k in range(40)]
    mf = mido.MidiFile(type=1, ticks_per_beat=tpq)
    mf.tracks += [_track([(0, mido.MetaMessage("set_tempo", tempo=400000))]), _track(piano, "Keys"),
                  _track(bass), _track(cc_only, "Filter"), _track(other_channel)]
    mf.save(tmp_path / "m.mid")
    (w,) = read_midi(tmp_path / "m.mid")
    assert w.tempo_bpm == pytest.approx(150.0)
    assert set(w.notes[:, 2]) == {36, 37, 38} and len(w.notes) == 16
    lane = DEFAULT_CC_NUMBERS.index(74)
    assert w.cc[lane, :40].tolist() == [(5 * k) % 128 for k in range(40)]
    assert (w.cc[lane, 40:] == w.cc[lane, 39]).all()
    assert (w.cc[DEFAULT_CC_NUMBERS.index(71)] == -1).all()  # channel 6 is not the bass


def test_initial_cc_carries_into_later_windows(tmp_path):
    tpq = 480  # 60 ticks per step; a window is 128 steps = 7680 ticks
    ev = [(0, mido.Message("control_change", control=74, value=10, channel=0)),
          (7679, mido.Message("control_change", control=74, value=20, channel=0)),  # rounds to step 128
          (7600, mido.Message("control_change", control=71, value=30, channel=0))]
    for w in range(3):
        ev += [(w * 7680 + 960, mido.Message("note_on", note=40, velocity=100, channel=0)),
               (w * 7680 + 1200, mido.Message("note_off", note=40, velocity=0, channel=0))]
    mf = mido.MidiFile(type=0, ticks_per_beat=tpq)
    mf.tracks.append(_track(ev))
    mf.save(tmp_path / "c.mid")
    w0, w1, w2 = read_midi(tmp_path / "c.mid")
    c74, c71 = DEFAULT_CC_NUMBERS.index(74), DEFAULT_CC_NUMBERS.index(71)
    assert w0.initial_cc[c74] == 10 and w0.initial_cc[c71] == -1 and w0.cc[c71, -1] == 30
    assert w1.initial_cc[c74] == 20 and w1.initial_cc[c71] == 30
    assert w2.initial_cc[c74] == 20 and not w2.cc_changes()[:, 1:].any()
    assert [tuple(w.notes[0]) for w in (w0, w1, w2)] == [(16, 4, 40, 100)] * 3


def test_errors_are_value_errors_with_reasons(tmp_path):
    (tmp_path / "t.mid").write_text("hello, not MIDI")
    (tmp_path / "e.mid").write_bytes(b"")
    for name, reason in [("t.mid", "not_midi"), ("e.mid", "empty"), ("missing.mid", "unreadable")]:
        with pytest.raises(ValueError) as info:
            read_midi(tmp_path / name)
        assert isinstance(info.value, MidiReadError) and info.value.reason == reason
        assert name in str(info.value)


def test_scanner_errors_are_the_public_midi_read_error(tmp_path):
    """vaelib.data.smf_container raises the class that vaelib.data.midi exports, so callers catch one type."""
    from vaelib.data import smf_container

    assert smf_container.MidiReadError is MidiReadError
    with pytest.raises(MidiReadError) as info:
        smf_container.chunks(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0")  # 2 tracks announced, none follow
    assert info.value.reason == "truncated"


def test_safe_name():
    names = {p: safe_name(p) for p in ["a/song.mid", "b/song.mid", "../../etc/passwd", "..\\..\\win\\x.mid",
                                        "/abs/Ünïcodé ß song!.MID", "", ".", "..", "...mid", ".hidden.mid",
                                        "a/b/" + "x" * 300 + ".mid", "-rf.mid", "con.mid", "song?.mid", "song*.mid"]}
    assert len(set(names.values())) == len(names)  # no clashes, even for equal stems
    for raw, name in names.items():
        assert "/" not in name and "\\" not in name and not name.startswith((".", "-")) and ".." not in name
        assert len(name) <= 48 + 11 and name.isascii()
        assert all(c.isalnum() or c in "_-" for c in name)
        assert safe_name(raw) == name and safe_name(Path(raw)) == name or raw in ("", ".", "..")  # deterministic
    assert names["a/song.mid"].startswith("song-")
    assert names["/abs/Ünïcodé ß song!.MID"].startswith("Unicode_song-")
    assert names["../../etc/passwd"].startswith("passwd-")


# ---------------------------------------------------------------------------- controllers
def test_written_files_name_their_controllers(tmp_path):
    import json

    from vaelib.data.midi_write import sidecar_path

    p = random_performance(3)
    path = write_midi(p, tmp_path / "a.mid")
    text = [m.text for m in mido.MidiFile(path).tracks[0] if m.type == "text"]
    assert text == ["vaelib controllers: CC74=cutoff CC71=resonance CC70=drive CC79=env_amount CC1=lfo_depth "
                    "CC76=lfo_rate CC77=osc_mix CC94=detune CC5=glide CC11=volume"]
    sheet = json.loads(sidecar_path(path).read_text())
    assert sheet["midi"] == "a.mid" and [c["cc"] for c in sheet["controllers"]] == list(DEFAULT_CC_NUMBERS)
    assert sheet["controllers"][-1] == {"cc": 11, "name": "volume", "default": 100, "synth_param": "volume"}
    q = Performance(p.notes, p.cc[:3], (16, 74, 91))
    path = write_midi(q, tmp_path / "b.mid", cc_map={16: "cutoff"})
    sheet = json.loads(sidecar_path(path).read_text())
    assert [(c["cc"], c["name"], c["synth_param"]) for c in sheet["controllers"]] == [
        (16, "cc16", "cutoff"), (74, "cutoff", None), (91, "cc91", None)]
    assert {m.control for m in mido.MidiFile(path).tracks[0] if m.type == "control_change"} <= {16, 74, 91}
    assert not sidecar_path(write_midi(q, tmp_path / "c.mid", sidecar=False)).exists()


def test_reading_every_cc_then_selecting_equals_reading_the_selection():
    from vaelib.data.midi import select_controllers, used_controllers

    chosen = (11, 74, 7, 10, 3)
    every = read_midi(TEST04, cc_numbers=tuple(range(128)))
    direct = read_midi(TEST04, cc_numbers=chosen)
    assert [select_controllers(w, chosen) for w in every] == direct
    used = used_controllers(every)
    assert used[0].cc_numbers == tuple(sorted(used[0].cc_numbers)) and {7, 10, 11} <= set(used[0].cc_numbers)


def test_other_parts_census_counts_changes_off_the_bass_channel(tmp_path):
    from vaelib.data.midi import other_parts_census

    tpq = 96
    bass = mido.MidiTrack([mido.Message("program_change", channel=0, program=33)])
    lead = mido.MidiTrack()
    for s in range(32):  # 8 bars of quarter notes = 2 windows
        bass += [mido.Message("note_on", channel=0, note=36, velocity=90),
                 mido.Message("control_change", channel=0, control=74, value=s % 128),
                 mido.Message("note_off", channel=0, note=36, velocity=0, time=tpq)]
        lead += [mido.Message("note_on", channel=2, note=72, velocity=90),
                 mido.Message("control_change", channel=2, control=1, value=s if s < 8 else 7),
                 mido.Message("control_change", channel=2, control=91, value=40),
                 mido.Message("note_off", channel=2, note=72, velocity=0, time=tpq)]
    mf = mido.MidiFile(type=1, ticks_per_beat=tpq)
    mf.tracks += [bass, lead]
    mf.save(tmp_path / "x.mid")
    # CC1 changes 7 times, all in the first window; CC91 never changes; the bass's CC74 is not counted here
    assert other_parts_census(tmp_path / "x.mid") == {1: (1, 7)}
