"""Issue 8 item 1: a hostile corpus of >= 200 generated MIDI files, broken and unusual-but-valid.

``read_midi`` must return valid windows or raise ``MidiReadError`` with a specific reason, never
anything else; valid files yield windows; the hour-long file reads fast in bounded memory; and
curation accounts for every file. A JSON summary (counts by reason, time and peak memory of the
largest file) is written to the test's tmp dir and printed."""
from __future__ import annotations

import json
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaelib.controllers import DEFAULT_CC_NUMBERS
from vaelib.data.midi import MidiReadError, read_midi
from vaelib.data.performance import Performance

REASONS = {"too_large", "unreadable", "empty", "not_midi", "bad_header", "truncated", "bad_chunk", "bad_event",
           "too_dense", "no_notes", "no_bass", "not_4_4", "parse_error"}
TPQ = 96  # 12 ticks per 1/32 step, 1536 ticks per 4-bar window
WINDOW = 16 * TPQ


# ---------------------------------------------------------------------------- a tiny SMF writer
def vlq(n: int) -> bytes:
    out = [n & 0x7F]
    while n > 0x7F:
        n >>= 7
        out.append(0x80 | (n & 0x7F))
    return bytes(reversed(out))


def chunk(kind: bytes, body: bytes) -> bytes:
    return kind + len(body).to_bytes(4, "big") + body


def smf(tracks, fmt=1, division=TPQ, ntrks=None) -> bytes:
    n = len(tracks) if ntrks is None else ntrks
    head = fmt.to_bytes(2, "big") + n.to_bytes(2, "big") + division.to_bytes(2, "big")
    return chunk(b"MThd", head) + b"".join(chunk(b"MTrk", t) for t in tracks)


def track(events, eot=True) -> bytes:
    """Track bytes from (abs tick, raw message bytes), stable-sorted by tick."""
    out, now = [], 0
    for tick, msg in sorted(events, key=lambda e: e[0]):
        out.append(vlq(tick - now) + bytes(msg))
        now = tick
    return b"".join(out) + (b"\x00\xff\x2f\x00" if eot else b"")


def tempo(tick, bpm):
    return tick, b"\xff\x51\x03" + int(round(60e6 / bpm)).to_bytes(3, "big")


def timesig(tick, num, den_pow):
    return tick, bytes([0xFF, 0x58, 4, num, den_pow, 24, 8])


def notes(ch=0, n=32, every=48, length=24, pitch=36, start=0, vel=100):
    ev = []
    for k in range(n):
        t, p = start + k * every, pitch + (k * 5) % 12
        ev += [(t, bytes([0x90 | ch, p, vel])), (t + length, bytes([0x80 | ch, p, 0]))]
    return ev


def ccs(ch=0, number=74, n=64, every=12, start=0):
    return [(start + k * every, bytes([0xB0 | ch, number, (7 * k) % 128])) for k in range(n)]


def base_files() -> list[bytes]:
    """Three healthy files the broken ones are cut from."""
    return [smf([track([tempo(0, 140)]), track(notes(0, 64) + ccs(0, 74, 256) + [(0, b"\xc0\x26")])]),
            smf([track(notes(2, 40, pitch=40) + ccs(2, 71, 100) + [tempo(0, 170)])], fmt=0),
            smf([track([tempo(0, 128), timesig(0, 4, 2)]), track(notes(1, 30, pitch=60)),
                 track(notes(3, 50, pitch=30) + ccs(3, 1, 150)), track(notes(9, 60, pitch=36))])]


# ---------------------------------------------------------------------------- the corpus
def hour_long() -> bytes:
    """One hour at 140 BPM: two notes per beat, all 10 monitored CCs on every 1/32 step (~2.7 MB)."""
    beat = [(0, b"\x90\x24\x64"), (40, b"\x80\x24\x00"), (48, b"\x90\x30\x64"), (88, b"\x80\x30\x00")]
    for s in range(8):
        beat += [(12 * s, bytes([0xB0, c, (16 * s + 3 * i) % 128])) for i, c in enumerate(DEFAULT_CC_NUMBERS)]
    rest = track(beat, eot=False)[1:]  # without the first event's delta (0)
    n_beats = 140 * 60  # the next beat's first event comes 8 ticks after this beat's last (88)
    body = b"\x00" + (rest + vlq(96 - 88)) * (n_beats - 1) + rest + b"\x00\xff\x2f\x00"
    return smf([track([tempo(0, 140)]), body])


def corpus(rng) -> dict[str, tuple[str, bytes]]:
    """name -> (category, bytes). Categories starting with 'ok_' are valid files that must give
    windows; 'nowin_' valid files with nothing to give; 'bad_' broken; 'any_' mutated (either)."""
    files: dict[str, tuple[str, bytes]] = {}
    bases = base_files()
    for b, data in enumerate(bases):  # truncated at random offsets
        for k in rng.choice(np.arange(1, len(data)), 20, replace=False):
            files[f"trunc_{b}_{k}.mid"] = ("bad_truncated", data[:k])
    for k in range(20):  # random bytes, and a valid header followed by random bytes
        files[f"random_{k}.mid"] = ("bad_random", rng.integers(0, 256, int(rng.integers(1, 4000)), np.uint8).tobytes())
        files[f"random_after_header_{k}.mid"] = ("bad_random_after_header", bases[0][:14] + rng.integers(
            0, 256, int(rng.integers(8, 4000)), np.uint8).tobytes())
    files["zero_bytes.mid"] = ("bad_empty", b"")
    files["nul_bytes.mid"] = ("bad_random", bytes(1000))
    files["text.mid"] = ("bad_text", b"This is not a MIDI file, just some text.\n" * 20)
    files["text_mthd.mid"] = ("bad_text", b"MThd is how it should start, but this is text\n" * 5)
    two = smf([track(notes(0, 20) + ccs(0)), track(notes(1, 20, pitch=50))])
    first_len = int.from_bytes(two[18:22], "big")
    for d in list(range(-20, 0)) + list(range(1, 21)):  # wrong chunk length
        files[f"chunklen_{d:+d}.mid"] = ("bad_chunk_length", two[:18] + (first_len + d).to_bytes(4, "big") + two[22:])
    for k in range(5):  # missing end of track: tolerated, as by most readers
        files[f"no_eot_{k}.mid"] = ("ok_missing_eot", smf([track(notes(k, 16 + k) + ccs(k), eot=False)]))
    abuse = [b"\x00\x24\x64", b"\x00\xff\x51\x03\x07\xa1\x20\x00\x24\x64", b"\x00\xf0\x01\xf7\x00\x40",
             b"\x00\x80", b"\x00\x3c\x7f\x00\x3c\x00"]
    for k, prefix in enumerate(abuse):  # running status with nothing to run on / cut-off meta
        files[f"running_status_{k}.mid"] = ("bad_running_status", smf([prefix + track(notes(0, 8))]))
    for k, msg in enumerate([b"\x90\x24\xc8", b"\x90\xa4\x40", b"\xb0\x4a\x80", b"\xc0\x90", b"\xe0\x00\xff"]):
        files[f"data_over_127_{k}.mid"] = ("bad_data_byte", smf([track(notes(0, 8) + [(500, msg)])]))
    for k in range(40):  # random byte mutations: anything but a crash is fine
        data = bytearray(bases[k % 3])
        for pos in rng.integers(14, len(data), int(rng.integers(1, 6))):
            data[pos] = int(rng.integers(0, 256))
        files[f"mutated_{k}.mid"] = ("any_mutated", bytes(data))

    files["type2.mid"] = ("ok_type2", smf([track(notes(0, 16) + ccs(0)), track(notes(0, 16, pitch=40))], fmt=2))
    files["no_notes.mid"] = ("nowin_no_notes", smf([track([tempo(0, 120)] + ccs(0) + ccs(3, 7))]))
    files["drums_only.mid"] = ("nowin_drums", smf([track(notes(9, 64, pitch=36) + ccs(9))]))
    files["cc_noteless_channels.mid"] = ("ok_cc_noteless", smf([track(notes(4, 32, pitch=33)), track(ccs(4, 74, 128)),
                                                                track(ccs(7, 71, 128)), track(ccs(12, 1, 128))]))
    files["meter_3_4.mid"] = ("ok_3_4", smf([track([timesig(0, 3, 2)] + notes(0, 48, every=36) + ccs(0))]))
    files["meter_7_8.mid"] = ("ok_7_8", smf([track([timesig(0, 7, 3)] + notes(0, 48, every=42) + ccs(0))]))
    changes = [tempo(0, 120), tempo(700, 90), timesig(800, 3, 2), tempo(WINDOW, 150), timesig(WINDOW, 4, 2)]
    files["changes_in_window.mid"] = ("ok_changes", smf([track(changes + notes(0, 64) + ccs(0, 74, 256))]))
    many = [track([(12 * (k % 128), bytes([0x90 | (k % 9), 30 + k % 37, 90])),
                   (12 * (k % 128) + 24, bytes([0x80 | (k % 9), 30 + k % 37, 0]))]) for k in range(10_000)]
    files["10000_tracks.mid"] = ("ok_many_tracks", smf(many))
    files["hour_long.mid"] = ("ok_hour", hour_long())
    overlap = [(0, b"\x90\x24\x64"), (24, b"\x90\x24\x50"), (36, b"\x80\x24\x00"), (60, b"\x80\x24\x00"),
               (48, b"\x90\x26\x64"), (48, b"\x90\x26\x64"), (96, b"\x80\x26\x00")]
    files["overlapping_same_pitch.mid"] = ("ok_overlap", smf([track(overlap + notes(0, 8, start=200))]))
    zero = [(k * 48, bytes([0x90, 36 + k % 7, 100])) for k in range(16)] + \
           [(k * 48, bytes([0x80, 36 + k % 7, 0])) for k in range(16)]
    files["zero_length_notes.mid"] = ("ok_zero_length", smf([track(zero)]))
    files["notes_past_window.mid"] = ("ok_past_window", smf([track(notes(0, 4, every=WINDOW // 2, length=3 * WINDOW))]))
    files["smpte_division.mid"] = ("ok_smpte", smf([track(notes(0, 32) + ccs(0))], division=(0xE7 << 8) | 40))
    riff_body = b"RMID" + chunk(b"data", smf([track(notes(0, 32) + ccs(0))]))
    files["riff_rmid.mid"] = ("ok_rmid", b"RIFF" + len(riff_body).to_bytes(4, "little") + riff_body)
    files["alien_chunk.mid"] = ("ok_alien_chunk", smf([track(notes(0, 32))])[:14] + chunk(b"XFIH", b"\x01\x02")
                                + chunk(b"MTrk", track(notes(0, 32) + ccs(0))))
    running = b"\x00\x90\x24\x64" + b"".join(vlq(24) + bytes([0x24, 0x00 if k % 2 == 0 else 0x64])
                                             for k in range(31)) + b"\x00\xff\x2f\x00"
    files["running_status_ok.mid"] = ("ok_running_status", smf([running]))
    zero_tempo = [tempo(0, 120), (0, b"\xff\x51\x03\x00\x00\x00")]
    files["zero_tempo.mid"] = ("ok_zero_tempo", smf([track(zero_tempo + notes(0, 16))]))
    return files


def check_windows(windows, path):
    assert isinstance(windows, list) and windows
    for w in windows:
        assert isinstance(w, Performance) and w.n_steps == 128 and w.cc.shape == (len(DEFAULT_CC_NUMBERS), 128)
        n = w.notes
        assert len(n) and (n[:, 0] >= 0).all() and (n[:, 1] >= 1).all() and (n[:, 0] + n[:, 1] <= 128).all()
        assert ((n[:, 2] >= 0) & (n[:, 2] <= 127)).all() and ((n[:, 3] >= 1) & (n[:, 3] <= 127)).all()
        assert ((w.cc >= -1) & (w.cc <= 127)).all()
        assert np.isfinite(w.tempo_bpm) and w.tempo_bpm > 0
        assert w.source == str(path) and w.style == ""
        assert w == w.normalized()


EXPECTED = {"bad_truncated": {"not_midi", "truncated"}, "bad_random": {"not_midi"},
            "bad_random_after_header": {"bad_chunk", "truncated"}, "bad_empty": {"empty"},
            "bad_text": {"not_midi", "bad_header"}, "bad_chunk_length": {"bad_chunk", "truncated", "bad_event"},
            "bad_running_status": {"bad_event", "bad_chunk"},
            "bad_data_byte": {"bad_event"}, "nowin_no_notes": {"no_notes"}, "nowin_drums": {"no_bass"}}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    files = corpus(np.random.default_rng(8))
    for name, (_, data) in files.items():
        (folder / name).write_bytes(data)
    return folder, {name: cat for name, (cat, _) in files.items()}


def test_hostile_corpus_reads_or_rejects_with_reason(hostile):
    folder, category = hostile
    assert len(category) >= 200
    by_reason, outcome = Counter(), {}
    for name, cat in sorted(category.items()):
        path = folder / name
        try:
            windows = read_midi(path)
        except MidiReadError as e:  # anything else propagates and fails the test
            assert e.reason in REASONS, (name, e.reason)
            assert e.reason in EXPECTED.get(cat, REASONS) and not cat.startswith("ok_"), (name, cat, str(e))
            by_reason[e.reason] += 1
            outcome[name] = e.reason
            continue
        assert not cat.startswith(("bad_", "nowin_")), (name, cat)
        check_windows(windows, path)
        by_reason["windows"] += 1
        outcome[name] = windows
    assert all(isinstance(outcome[n], list) for n, c in category.items() if c.startswith("ok_"))

    lane = {c: i for i, c in enumerate(DEFAULT_CC_NUMBERS)}
    w = outcome["cc_noteless_channels.mid"][0]  # channel 5's CC-only track reaches the bass windows
    assert (w.cc[lane[74]] >= 0).all() and (w.cc[lane[71]] == -1).all() and (w.cc[lane[1]] == -1).all()
    w0, w1 = outcome["changes_in_window.mid"][:2]
    assert w0.tempo_bpm == pytest.approx(120.0) and w1.tempo_bpm == pytest.approx(150.0)
    assert len(outcome["hour_long.mid"]) == 64  # max_windows caps an hour (~525 windows)
    assert outcome["hour_long.mid"][5].cc_changes().sum() == 10 * 128
    assert len(outcome["meter_3_4.mid"]) == 2 and len(outcome["meter_7_8.mid"]) == 2  # 16-beat windows
    with pytest.raises(MidiReadError) as info:
        read_midi(folder / "meter_3_4.mid", require_4_4=True)
    assert info.value.reason == "not_4_4"
    assert [w.tempo_bpm for w in read_midi(folder / "changes_in_window.mid", require_4_4=True)] == [150.0]
    (ov,) = outcome["overlapping_same_pitch.mid"][:1]
    assert ov.notes[:3].tolist() == [[0, 2, 36, 100], [2, 1, 36, 80], [4, 4, 38, 100]]
    assert (outcome["zero_length_notes.mid"][0].notes[:, 1] == 1).all()
    past = outcome["notes_past_window.mid"]
    assert [w.notes[:, :2].tolist() for w in past] == [[[0, 128], [64, 64]], [[0, 128], [64, 64]]]
    assert outcome["smpte_division.mid"][0].tempo_bpm == 120.0
    assert outcome["zero_tempo.mid"][0].tempo_bpm == pytest.approx(120.0)
    assert outcome["10000_tracks.mid"][0].n_notes > 0

    largest = max(category, key=lambda n: (folder / n).stat().st_size)
    tracemalloc.start()
    t0 = time.perf_counter()
    read_midi(folder / largest)
    wall = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t0 = time.perf_counter()
    read_midi(folder / "10000_tracks.mid")
    wall_tracks = time.perf_counter() - t0
    summary = {"files": len(category), "by_reason": dict(sorted(by_reason.items())),
               "largest_file": {"name": largest, "bytes": (folder / largest).stat().st_size,
                                "wall_s": round(wall, 4), "peak_traced_mb": round(peak / 2**20, 2)},
               "10000_tracks_wall_s": round(wall_tracks, 4)}
    (folder.parent / "hostile_summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    assert largest == "hour_long.mid"
    assert wall < 5.0 and wall_tracks < 5.0  # generous: ~0.05 s each on a shared 2-core box
    assert peak < 64 * 2**20


def test_curation_accounts_for_every_hostile_file(hostile, tmp_path):
    curation = pytest.importorskip("vaelib.data.curation")
    folder, category = hostile
    report = curation.curate(str(folder), tmp_path / "out", progress=False)
    files = report["files"]
    assert files["read"] == len(category)
    assert files["read"] == files["usable"] + sum(files["rejected"].values())
    assert not any(r.startswith("unexpected_error") for r in files["rejected"])
    assert set(files["rejected"]) <= REASONS | {"no_windows", "no_usable_windows"}
    assert files["usable"] > 0
    print(json.dumps({"curation_files": files, "windows": report["windows"]}, indent=2))


@settings(max_examples=300, deadline=None)
@given(base=st.integers(0, 2), edits=st.lists(st.tuples(st.sampled_from(["set", "insert", "delete"]),
                                                        st.integers(0, 2**20), st.integers(0, 255)), max_size=8))
def test_fuzzed_files_give_windows_or_a_reason(hostile, base, edits):
    folder, _ = hostile
    data = bytearray(base_files()[base])
    for op, pos, value in edits:
        pos %= len(data) + 1
        if op == "set" and pos < len(data):
            data[pos] = value
        elif op == "insert":
            data[pos:pos] = bytes([value])
        elif op == "delete":
            del data[pos:pos + 1 + value % 4]
    path = folder.parent / "fuzz.mid"
    path.write_bytes(bytes(data))
    try:
        windows = read_midi(path)
    except MidiReadError as e:
        assert e.reason in REASONS
    else:
        check_windows(windows, path)
