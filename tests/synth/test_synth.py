"""The built-in VA voice: length, determinism, the documented CC mapping, pitch, clicks; the vst3 backend's
MIDI conversion and errors; the render CLI."""
from __future__ import annotations

import hashlib
import warnings

import numpy as np
import pytest
from scipy.signal import stft

from vaelib.controllers import BY_NAME, CONTROLLERS, DEFAULT_CC_NUMBERS
from vaelib.evaluation.mrstft import mr_stft
from vaelib.data.performance import Performance
from vaelib.synth import MAPPING, get_controls, get_signal, midi_events, render

SR = 22050
LANE = {c.name: i for i, c in enumerate(CONTROLLERS)}
assert tuple(c.number for c in CONTROLLERS) == DEFAULT_CC_NUMBERS


def perf_of(notes, cc=(), n_steps=64, tempo_bpm=120.0) -> Performance:
    """Performance from note rows and ``(step, lane name, value)`` CC events."""
    return Performance.from_events(notes, [(s, LANE[name], v) for s, name, v in cc], n_steps=n_steps,
                                   tempo_bpm=tempo_bpm)


def riff() -> Performance:
    """Two bars with staccato notes, a legato slide, and motion on several lanes."""
    notes = [(0, 3, 36, 110), (4, 2, 48, 70), (8, 6, 36, 100), (12, 4, 43, 90), (16, 8, 31, 127), (28, 4, 38, 80)]
    cc = [(t, "cutoff", int(64 + 50 * np.sin(t / 3))) for t in range(64)]
    cc += [(0, "glide", 60), (20, "osc_mix", 100), (30, "volume", 80), (40, "detune", 90)]
    return perf_of(notes, cc, n_steps=64, tempo_bpm=137.0)


def centroid_hz(audio, sr=SR) -> float:
    mag = np.abs(np.fft.rfft(audio * np.hanning(audio.size)))
    f = np.fft.rfftfreq(audio.size, 1 / sr)
    return float((f * mag).sum() / mag.sum())


# ---------------------------------------------------------------- basic contract
@pytest.mark.parametrize("sr", [22050, 44100])
def test_length_is_duration_times_rate_and_finite(sr):
    p = riff()  # 137 bpm: duration * sr is not an integer
    a = render(p, sample_rate=sr)
    assert a.dtype == np.float32 and a.ndim == 1
    assert a.size == round(p.duration_sec * sr)
    assert np.isfinite(a).all() and np.abs(a).max() <= 1.0
    assert np.abs(a).max() > 0.05  # it makes sound


def test_same_input_gives_bit_identical_audio():
    p = riff()
    h = [hashlib.sha256(render(p).tobytes()).hexdigest() for _ in range(2)]
    assert h[0] == h[1]
    assert hashlib.sha256(render(p, 44100).tobytes()).hexdigest() != h[0]


def test_empty_performance_renders_silence():
    a = render(Performance.empty(32))
    assert a.size == round(Performance.empty(32).duration_sec * SR) and not a.any()


def test_extreme_settings_stay_bounded():
    cc = [(0, c.name, 127) for c in CONTROLLERS]
    a = render(perf_of([(0, 32, 24, 127), (16, 16, 96, 127)], cc, n_steps=32))
    assert np.isfinite(a).all() and np.abs(a).max() < 1.0


# ---------------------------------------------------------------- the documented CC table
@pytest.mark.parametrize("name,at0,at127", [
    ("cutoff", 40.0, 12000.0), ("resonance", 0.0, 0.95), ("drive", 1.0, 8.0), ("env_amount", 0.0, 5.0),
    ("lfo_depth", 0.0, 3.0), ("lfo_rate", 0.1, 20.0), ("osc_mix", 0.0, 1.0), ("detune", 0.0, 50.0),
    ("glide", 0.0, 0.3), ("volume", 0.0, 1.0)])
def test_control_curves_follow_the_controller_table(name, at0, at127):
    curve = MAPPING[name][0]
    lo = get_controls(perf_of([], [(0, name, 0)], n_steps=8))[curve]
    hi = get_controls(perf_of([], [(0, name, 127)], n_steps=8))[curve]
    np.testing.assert_allclose([lo[0], lo[-1], hi[0], hi[-1]], [at0, at0, at127, at127], rtol=1e-9, atol=1e-12)


def test_unset_lanes_use_the_table_defaults():
    c = get_controls(perf_of([], [], n_steps=8))
    np.testing.assert_allclose(c["cutoff_hz"], 40.0 * 300.0 ** (BY_NAME["cutoff"].default / 127))
    np.testing.assert_allclose(c["gain"], (BY_NAME["volume"].default / 127) ** 2)


def test_cutoff_sweep_raises_the_spectral_centroid_monotonically():
    values = list(range(0, 128, 8)) + [127]
    cents = [centroid_hz(render(perf_of([(0, 16, 40, 100)], [(0, "cutoff", v)], n_steps=16), 44100)[4410:])
             for v in values]
    assert np.all(np.diff(cents) > 0), np.round(cents)
    assert cents[-1] > 8 * cents[0]


@pytest.mark.parametrize("pitch", [28, 40, 52, 64])
def test_held_note_f0_within_10_cents(pitch):
    a = render(perf_of([(0, 64, pitch, 100)], [(0, "cutoff", 90)], n_steps=64), 44100).astype(np.float64)
    seg = a[44100 // 2: 44100 // 2 + 2 ** 16]
    n_fft = 2 ** 19  # zero-padded: bin spacing 0.08 Hz, then a parabolic peak fit
    mag = np.abs(np.fft.rfft(seg * np.hanning(seg.size), n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1 / 44100)
    expected = 440.0 * 2 ** ((pitch - 69) / 12)
    band = (freqs > expected / 1.4) & (freqs < expected * 1.4)  # the fundamental, not a harmonic
    i = np.flatnonzero(band)[np.argmax(mag[band])]
    a_, b_, c_ = np.log(mag[i - 1: i + 2])
    f0 = freqs[i] + 0.5 * (a_ - c_) / (a_ - 2 * b_ + c_) * (freqs[1] - freqs[0])
    assert abs(1200 * np.log2(f0 / expected)) < 10


def test_glide_moves_pitch_only_on_legato_notes():
    legato = [(0, 9, 36, 100), (8, 8, 48, 100)]
    detached = [(0, 8, 36, 100), (8, 8, 48, 100)]
    for notes, should_glide in [(legato, True), (detached, False)]:
        fast = render(perf_of(notes, [(0, "glide", 0)], n_steps=16))
        slow = render(perf_of(notes, [(0, "glide", 127)], n_steps=16))
        assert (not np.array_equal(fast, slow)) == should_glide


# ---------------------------------------------------------------- every lane is audible
@pytest.mark.parametrize("name", [c.name for c in CONTROLLERS])
def test_every_monitored_cc_audibly_changes_the_render(name):
    base_cc = [(0, "lfo_depth", 64)] if name == "lfo_rate" else []  # the rate is inaudible at zero depth
    default = BY_NAME[name].default
    moved = 127 if default < 64 else 0
    notes = [(0, 6, 36, 100), (4, 6, 43, 100), (12, 4, 36, 100)]  # the second note is legato (glide)
    base = render(perf_of(notes, base_cc, n_steps=16))
    other = render(perf_of(notes, base_cc + [(0, name, moved)], n_steps=16))
    d = mr_stft(other, base)
    assert np.isfinite(d) and d > 0.05, (name, d)


# ---------------------------------------------------------------- no zipper noise, no clicks
def hf_flux(audio, sr=SR):
    """(n_frames-1,) positive spectral flux above 3 kHz, normalised by the loudest frame's full-band sum."""
    f, _, z = stft(audio, sr, nperseg=256, noverlap=192, boundary=None, padded=False)  # no zero-pad edges
    mag = np.abs(z)
    flux = np.maximum(np.diff(mag[f > 3000], axis=1), 0).sum(0)
    return flux / mag.sum(0).max()


# volume and cutoff act after/at the filter, so a stepped jump is a broadband transient; drive, osc_mix act
# before the (dark) low-pass, which smooths them either way, so there only the bound itself is checked
@pytest.mark.parametrize("name,low,high,stepping_clicks", [
    ("volume", 15, 127, True), ("cutoff", 20, 60, True), ("resonance", 0, 120, True),
    ("drive", 0, 90, False), ("osc_mix", 0, 127, False)])
def test_parameter_jumps_do_not_click_but_block_stepping_does(name, low, high, stepping_clicks):
    # a dark held note (cutoff ~240 Hz, no filter env) so any energy above 3 kHz is a transient
    cc = [(0, "cutoff", 40), (0, "env_amount", 0), (0, "resonance", 0)]
    cc += [(s, name, high if (s // 8) % 2 == 0 else low) for s in range(8, 64, 8)]
    p = perf_of([(0, 64, 40, 100)], cc, n_steps=64)
    ours = hf_flux(get_signal(**get_controls(p, SR)))
    assert ours.max() < 0.005, ours.max()
    if stepping_clicks:  # the measure does catch block-stepped automation (256-sample blocks, no ramps)
        stepped = hf_flux(get_signal(**get_controls(p, SR, control_rate_hop=256, smooth_sec=0.0),
                                     interpolation="step"))
        assert stepped.max() > 10 * ours.max(), (ours.max(), stepped.max())


# ---------------------------------------------------------------- vst3 backend
def test_vst3_without_a_plugin_fails_clearly(tmp_path):
    p = riff()
    with pytest.raises(ValueError, match="plugin_path"):
        render(p, backend="vst3")
    with pytest.raises(FileNotFoundError, match="missing.vst3"):
        render(p, backend="vst3", plugin_path=tmp_path / "missing.vst3")
    with pytest.raises(ValueError, match="unknown backend"):
        render(p, backend="virus")


def test_midi_event_conversion():
    import mido

    p = riff()
    ev = midi_events(p)
    msgs = [(mido.Message.from_bytes(list(b)), t) for b, t in ev]
    times = [t for _, t in msgs]
    assert times == sorted(times) and times[0] >= 0.0
    ons = [(round(t / p.step_sec), m.note, m.velocity) for m, t in msgs if m.type == "note_on"]
    offs = [(round(t / p.step_sec), m.note) for m, t in msgs if m.type == "note_off"]
    assert sorted(ons) == sorted((int(o), int(n), int(v)) for o, _, n, v in p.notes)
    assert sorted(offs) == sorted((int(o + d), int(n)) for o, d, n, _ in p.notes)
    ccs = [(round(t / p.step_sec), m.control, m.value) for m, t in msgs if m.type == "control_change"]
    lanes, steps = np.nonzero(p.cc_changes())
    assert sorted(ccs) == sorted((int(s), p.cc_numbers[k], int(p.cc[k, s])) for k, s in zip(lanes, steps))
    # at one time a CC precedes the notes it shapes, and a note-off precedes a note-on
    at0 = [m.type for m, t in msgs if t == 0.0]
    assert at0.index("note_on") > max(i for i, ty in enumerate(at0) if ty == "control_change")


def test_more_than_100_events_at_one_time_are_nudged_apart():
    chord = [(0, 4, n, 100) for n in range(0, 127)]
    cc = [(0, c.name, 10) for c in CONTROLLERS]
    p = Performance(np.array(chord, np.int32), Performance.from_events([], [(0, LANE[n], v) for _, n, v in cc],
                                                                       n_steps=8).cc)
    ev = midi_events(p, sample_rate=44100)
    positions, counts = np.unique([round(t * 44100) for _, t in ev], return_counts=True)  # host sample positions
    assert len(ev) == 2 * 127 + len(CONTROLLERS) and counts.max() <= 100
    assert positions[counts.argmax()] == 0 and max(t for _, t in ev if t < p.step_sec) < 3 / 44100


# ---------------------------------------------------------------- CLI
def test_render_cli_writes_a_wav(tmp_path):
    midi = pytest.importorskip("vaelib.data.midi")
    import soundfile as sf

    from vaelib.synth.__main__ import main

    p = riff()
    pytest.importorskip("vaelib.data.midi_write").write_midi(p, tmp_path / "in.mid")
    assert main([str(tmp_path / "in.mid"), str(tmp_path / "out.wav"), "--sample-rate", "16000", "--first"]) == 0
    audio, sr = sf.read(tmp_path / "out.wav")
    first = midi.read_midi(tmp_path / "in.mid")[0]
    assert sr == 16000 and audio.size == round(first.duration_sec * 16000) and np.abs(audio).max() > 0.05
    assert main([str(tmp_path / "nope.mid"), str(tmp_path / "x.wav")]) == 1


# ---------------------------------------------------------------- the CC map
def test_a_cc_map_routes_other_numbers_to_the_synth_parameters():
    from vaelib.synth import controls

    base = riff()
    numbers = (11, 16, 17)  # expression, and two numbers outside the default table
    lanes = {11: "volume", 16: "cutoff", 17: "resonance"}
    ramp = [(t, 1, int(2 * t)) for t in range(64)] + [(0, 0, 90), (0, 2, 100)]
    p = Performance.from_events(base.notes, ramp, n_steps=64, cc_numbers=numbers, tempo_bpm=137.0)
    ref = Performance.from_events(base.notes, [(t, LANE["cutoff"], int(2 * t)) for t in range(64)]
                                  + [(0, LANE["volume"], 90), (0, LANE["resonance"], 100)],
                                  n_steps=64, tempo_bpm=137.0)
    controls._WARNED.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mapped = render(p, cc_map=lanes)
    # the same motion on the default numbers renders bit-identically: the map, not the number, decides
    assert np.array_equal(mapped, render(ref))
    c = get_controls(p, cc_map=lanes)
    assert c["cutoff_hz"][-1] > 4 * c["cutoff_hz"][0]
    with pytest.warns(UserWarning, match="ignores CC 16, 17"):
        plain = render(p)  # the default map knows CC11 only: cutoff and resonance stay at their defaults
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning per set of numbers per process
        assert np.array_equal(render(p), plain)
    assert not np.array_equal(plain, mapped)
    np.testing.assert_allclose(get_controls(p)["cutoff_hz"], 40.0 * 300.0 ** (BY_NAME["cutoff"].default / 127))


def test_the_volume_lane_is_expression_cc11():
    assert DEFAULT_CC_NUMBERS[LANE["volume"]] == 11 and 7 not in DEFAULT_CC_NUMBERS
    p = perf_of([(0, 16, 40, 100)], [(0, "volume", 127)], n_steps=32)
    q = perf_of([(0, 16, 40, 100)], [(0, "volume", 20)], n_steps=32)
    assert np.abs(render(p)).max() > 4 * np.abs(render(q)).max()


def test_vst3_parameter_plan_cuts_at_mapped_changes_and_keeps_unmapped_ccs_as_midi():
    import mido

    from vaelib.synth.vst3 import parameter_segments

    notes = [(0, 8, 36, 100), (8, 24, 38, 90)]
    p = Performance.from_events(notes, [(0, 0, 10), (16, 0, 127), (4, 1, 50)], n_steps=32, cc_numbers=(16, 91),
                                tempo_bpm=120.0)
    n = int(round(p.duration_sec * 44100))
    segs = parameter_segments(p, {16: "Filter Cutoff"}, 44100, n)
    assert [(s["start"], s["stop"]) for s in segs] == [(0, round(16 * p.step_sec * 44100)),
                                                        (round(16 * p.step_sec * 44100), n)]
    assert [s["params"] for s in segs] == [{"Filter Cutoff": 10 / 127}, {"Filter Cutoff": 1.0}]
    msgs = [(mido.Message.from_bytes(list(b)), k) for k, s in enumerate(segs) for b, _ in s["events"]]
    assert [(m.control, m.value) for m, _ in msgs if m.type == "control_change"] == [(91, 50)]  # unmapped: MIDI
    assert sum(m.type == "note_on" for m, _ in msgs) == 2 and sum(m.type == "note_off" for m, _ in msgs) == 2
    assert all(0 <= t <= (s["stop"] - s["start"]) / 44100 for s in segs for _, t in s["events"])
