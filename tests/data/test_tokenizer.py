"""Tokenizer: exact round trips, the documented event order, CC-on-change, robust decode, config JSON, thinning."""
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaelib.config import TokenizerConfig
from vaelib.data.performance import Performance
from vaelib.data.synthetic import generate
from vaelib.data.tokenizer import (BOS, EOS, PAD, TokenBudgetError, TokenError, Tokenizer, _decimate, _is_normalized,
                               quantize_velocity)

BIG = Tokenizer(TokenizerConfig(max_len=1 << 20))  # no thinning: round trips must be exact
T = BIG.config.n_steps


@st.composite
def performances(draw, max_notes=40, max_cc=300):
    notes = draw(st.lists(st.tuples(st.integers(0, T - 1), st.integers(1, T), st.integers(0, 127),
                                    st.integers(1, 127)), max_size=max_notes))
    ev = draw(st.lists(st.tuples(st.integers(0, T - 1), st.integers(0, 9), st.integers(0, 127)), max_size=max_cc))
    init = draw(st.lists(st.integers(-1, 127), min_size=10, max_size=10))
    tempo = draw(st.floats(60, 200))
    return Performance.from_events(notes, sorted(ev, key=lambda e: e[0]), n_steps=T, initial_cc=init,
                                   tempo_bpm=tempo)


def test_vocabulary_layout():
    tok = Tokenizer()
    assert tok.vocab_size == 1603
    assert (tok.vel0, tok.on0, tok.off0, tok.shift0, tok.cc0) == (3, 35, 163, 291, 323)
    types = tok.token_types(np.arange(tok.vocab_size))
    assert np.bincount(types).tolist() == [3, 32, 128, 128, 32, 1280]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(performances())
def test_round_trip_is_identity_on_the_grid(perf):
    back = BIG.decode(BIG.encode(perf), tempo_bpm=perf.tempo_bpm)
    assert back == perf.with_quantized_velocity()
    # a quantised performance is a fixed point: its ids do not change
    assert np.array_equal(BIG.encode(perf.with_quantized_velocity()), BIG.encode(perf))


def test_round_trip_dense_synthetic():
    for p in generate(30, seed=5, complexity=1.0):
        assert BIG.decode(BIG.encode(p), tempo_bpm=p.tempo_bpm) == p.with_quantized_velocity()


def test_velocity_quantisation_is_bin_centre():
    v = np.arange(1, 128)
    q = quantize_velocity(v)
    assert np.all(np.abs(q - v) <= 2) and np.array_equal(quantize_velocity(q), q)
    assert len(np.unique(q)) == 32


def test_event_order_within_a_step():
    tok = Tokenizer()
    notes = [(0, 4, 40, 100), (4, 4, 43, 60), (4, 2, 36, 127)]
    ev = [(0, 0, 10), (4, 3, 5), (4, 0, 20)]
    ids = tok.encode(Performance.from_events(notes, ev))
    vel = lambda v: tok.vel0 + v // 4  # noqa: E731
    cc = lambda lane, v: tok.cc0 + 128 * lane + v  # noqa: E731
    shift = lambda n: tok.shift0 + n - 1  # noqa: E731
    expected = [BOS, cc(0, 10), vel(100), tok.on0 + 40,
                shift(4), tok.off0 + 40, cc(0, 20), cc(3, 5), vel(127), tok.on0 + 36, vel(60), tok.on0 + 43,
                shift(2), tok.off0 + 36, shift(2), tok.off0 + 43, EOS]
    assert ids.tolist() == expected


def test_cc_emitted_only_on_change_and_last_value_in_a_step_wins():
    tok = Tokenizer()
    ev = [(t, 2, 50) for t in range(0, 40)] + [(60, 2, 10), (60, 2, 90)]
    perf = Performance.from_events([(0, 8, 40, 90)], ev)
    ids = tok.encode(perf)
    lane2 = ids[(ids >= tok.cc0 + 256) & (ids < tok.cc0 + 384)] - tok.cc0 - 256
    assert lane2.tolist() == [50, 90]
    assert tok.decode(ids).cc[2, 60] == 90


def test_long_gaps_use_several_time_shifts():
    tok = Tokenizer()
    ids = tok.encode(Performance.from_events([(0, 100, 30, 64), (110, 5, 31, 64)], []))
    shifts = ids[tok.token_types(ids) == 4] - tok.shift0 + 1
    assert shifts.tolist() == [32, 32, 32, 4, 10, 5]


def test_decode_is_robust():
    tok = Tokenizer()
    on, off, vel, sh = tok.on0, tok.off0, tok.vel0, tok.shift0
    # unmatched NOTE_OFF ignored, open note closed at the last time position, PAD ignored anywhere
    ids = [BOS, off + 50, PAD, vel + 20, on + 60, PAD, sh + 9, EOS, on + 61]
    p = tok.decode(ids)
    assert p.notes.tolist() == [[0, 10, 60, 82]]
    assert tok.decode([x for x in ids if x != PAD]) == p
    # NOTE_ON without VELOCITY uses the centre of 64's bin, so decoding its encoding gives it back
    bare = tok.decode([on + 40, sh + 3])
    assert bare.notes.tolist() == [[0, 4, 40, int(quantize_velocity(64))]]
    assert tok.decode(tok.encode(bare)) == bare
    # events past the window are dropped, notes are cut at its end
    far = [vel + 10, on + 30] + [sh + 31] * 6 + [vel + 10, on + 31]
    q = tok.decode(far)
    assert q.notes[:, 2].tolist() == [30] and q.notes[0, 1] == T


@pytest.mark.parametrize("ids", [[], [PAD] * 5, [BOS, EOS, 40], [EOS], [BOS, PAD, EOS]])
def test_decode_of_an_empty_body_gives_an_empty_performance(ids):
    tok = Tokenizer()
    p = tok.decode(ids)
    assert p.n_notes == 0 and np.all(p.cc == -1) and p.n_steps == tok.config.n_steps
    assert tok.encode(p).tolist() == [BOS, EOS]


def test_decode_of_a_body_without_notes():
    tok = Tokenizer()
    p = tok.decode([BOS, tok.shift0 + 3, tok.cc0 + 128 * 3 + 77, EOS])  # shift by 4, then CC
    assert p.n_notes == 0 and p.cc[3, 4:].tolist() == [77] * (T - 4) and np.all(p.cc[3, :4] == -1)
    assert tok.decode([tok.shift0 + 9]) == Performance.empty(T)


@pytest.mark.parametrize("bad", [[1603], [-1], [5, 1e6]])
def test_decode_out_of_range_raises_token_error(bad):
    with pytest.raises(TokenError, match="outside the vocabulary"):
        Tokenizer().decode(np.array(bad, dtype=np.int64))


def test_config_json_round_trip(tmp_path):
    cfg = TokenizerConfig(cc_numbers=(74, 71, 1), steps_per_bar=16, n_bars=2, max_len=300, thinning="reject")
    cfg.save(tmp_path / "tok.json")
    back = TokenizerConfig.load(tmp_path / "tok.json")
    assert back == cfg and Tokenizer(back).vocab_size == 3 + 32 + 256 + 32 + 3 * 128
    assert TokenizerConfig.from_dict(TokenizerConfig().__dict__) == TokenizerConfig()


def _dense(n_steps=128):
    t = np.arange(n_steps)
    ev = [(int(s), lane, int((s * 7 + lane * 13) % 128)) for s in t for lane in range(10)]
    return Performance.from_events([(0, 16, 36, 100), (64, 16, 48, 100)], ev, n_steps=n_steps)


def test_thinning_decimates_cc_lanes_until_the_window_fits():
    perf = _dense()
    tok = Tokenizer(TokenizerConfig(max_len=400))
    assert BIG.encode(perf).size > 400
    fitted, factor = tok.fit(perf)
    ids = tok.encode(perf)
    assert ids.size <= 400 and factor > 1 and factor & (factor - 1) == 0
    blocks = fitted.cc.reshape(10, -1, factor)
    assert np.all(blocks == blocks[:, :, :1])  # sample-and-hold at each block start
    assert np.array_equal(blocks[:, :, 0], perf.cc[:, ::factor])
    assert np.array_equal(fitted.notes, perf.notes)  # notes are never thinned
    assert tok.decode(ids) == fitted.with_quantized_velocity()


def test_thinning_reject_policy_and_hopeless_windows_raise():
    with pytest.raises(TokenBudgetError):
        Tokenizer(TokenizerConfig(max_len=400, thinning="reject")).encode(_dense())
    many = Performance.from_events([(t, 1, 40 + t % 2, 90) for t in range(128)], [])
    with pytest.raises(TokenBudgetError):
        Tokenizer(TokenizerConfig(max_len=64)).encode(many)


def test_fitting_window_is_untouched():
    p = generate(1, seed=0, complexity=0.3)[0]
    tok = Tokenizer(TokenizerConfig(max_len=1024))
    fitted, factor = tok.fit(p)
    assert factor == 1 and fitted == p


# ---------------------------------------------------------------- the compiled encoder vs a numpy reference
def reference_encode(tok, perf, factor=1):
    """The documented event stream built the straightforward way: sort (step, group, sub) events, then put
    ceil(gap / max_shift) TIME_SHIFTs (full ones, then the remainder) before each event."""
    c = tok.config
    perf = _decimate(perf, factor)
    notes = perf.notes.astype(np.int64)
    lane, t = np.nonzero(perf.cc_changes())
    vel_bin = np.minimum(notes[:, 3] // (128 // c.n_velocity_bins), c.n_velocity_bins - 1)
    events = [(on + dur, 0, p, tok.off0 + p) for on, dur, p, _ in notes]
    events += [(s, 1, ln, tok.cc0 + 128 * ln + int(perf.cc[ln, s])) for ln, s in zip(lane, t)]
    events += [(on, 2, 2 * p, tok.vel0 + b) for (on, _, p, _), b in zip(notes, vel_bin)]
    events += [(on, 2, 2 * p + 1, tok.on0 + p) for on, _, p, _ in notes]
    out, last = [BOS], 0
    for step, _, _, token in sorted(events):
        gap = step - last
        while gap > c.max_shift:
            out.append(tok.shift0 + c.max_shift - 1)
            gap -= c.max_shift
        if gap:
            out.append(tok.shift0 + gap - 1)
        out.append(token)
        last = step
    return np.array(out + [EOS], np.int64)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(performances(), st.sampled_from([1, 2, 4, 8, 128]))
def test_compiled_encoder_equals_the_reference(perf, factor):
    assert np.array_equal(BIG._raw_encode(perf, factor), reference_encode(BIG, perf, factor))


def test_compiled_encoder_equals_the_reference_on_dense_and_odd_grids():
    for p in generate(20, seed=9, complexity=1.0) + [_dense(), Performance.empty(T)]:
        for factor in (1, 4):
            assert np.array_equal(BIG._raw_encode(p, factor), reference_encode(BIG, p, factor))
    small = Tokenizer(TokenizerConfig(cc_numbers=(74, 71), steps_per_bar=12, n_bars=3, n_velocity_bins=16,
                                      max_shift=5, max_len=1 << 20))
    rng = np.random.default_rng(3)
    for _ in range(20):
        notes = np.stack([rng.integers(0, 36, 12), rng.integers(1, 40, 12), rng.integers(30, 40, 12),
                          rng.integers(1, 128, 12)], 1)
        ev = np.stack([np.sort(rng.integers(0, 36, 30)), rng.integers(0, 2, 30), rng.integers(0, 128, 30)], 1)
        p = Performance.from_events(notes, ev, n_steps=36, cc_numbers=(74, 71), steps_per_bar=12)
        assert np.array_equal(small.encode(p), reference_encode(small, p))


@st.composite
def raw_performances(draw):
    """Rows as a user might build them: unsorted, overlapping, duplicated, out of range, CC gaps."""
    notes = draw(st.lists(st.tuples(st.integers(-3, T + 3), st.integers(-1, T), st.integers(-1, 128),
                                    st.integers(0, 130)), max_size=25))
    notes += draw(st.lists(st.sampled_from(notes), max_size=3)) if notes else []
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    cc = np.where(rng.random((10, T)) < draw(st.sampled_from([0.02, 0.3, 1.0])), rng.integers(-3, 131, (10, T)), -1)
    raw = Performance(np.array(notes, np.int64).reshape(-1, 4), cc)
    return replace(raw, cc=raw.normalized().cc) if draw(st.booleans()) else raw  # clean lanes half the time


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_performances())
def test_encode_normalises_exactly_when_needed(raw):
    norm = raw.normalized()
    assert _is_normalized(norm.notes, norm.cc)
    assert bool(_is_normalized(raw.notes, raw.cc)) == (raw.normalized() == raw)
    assert np.array_equal(BIG.encode(raw), BIG.encode(norm))
    assert BIG.decode(BIG.encode(raw)) == norm.with_quantized_velocity()


def test_fit_encode_is_fit_then_encode():
    tok = Tokenizer(TokenizerConfig(max_len=400))
    for p in [_dense(), generate(1, seed=4)[0]]:
        ids, fitted, factor = tok.fit_encode(p)
        assert (fitted, factor) == tok.fit(p) and np.array_equal(ids, tok.encode(p))
        assert np.array_equal(ids, reference_encode(tok, fitted))


def test_encode_of_extreme_rows_normalises_first():
    huge = Performance(np.array([[5, 2 ** 31 - 1, 40, 90], [5, 3, 40, 300]]), np.full((10, T), 500))
    assert not _is_normalized(huge.notes, huge.cc)
    assert BIG.decode(BIG.encode(huge)) == huge.normalized().with_quantized_velocity()
    assert np.array_equal(BIG._raw_encode(huge), BIG.encode(huge))
