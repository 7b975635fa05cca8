"""Metric unit tests on hand-computed cases (issue 5)."""
import importlib.util
import math

import muspy
import numpy as np
import pytest

from vaelib.evaluation import metrics as M
from vaelib.config import TokenizerConfig
from vaelib.controllers import DEFAULT_CC_NUMBERS, default_value
from vaelib.data.performance import Performance
from vaelib.data.tokenizer import Tokenizer

NOTES = [(0, 4, 40, 100), (8, 4, 43, 90), (32, 8, 40, 80), (64, 16, 47, 70), (100, 20, 45, 60)]


def perf_with(notes=NOTES, cc_events=(), n_steps=128, cc_numbers=DEFAULT_CC_NUMBERS):
    return Performance.from_events(list(notes), list(cc_events), n_steps=n_steps, cc_numbers=cc_numbers)


def constant(value, lanes=(0,), n_steps=128):
    return perf_with(cc_events=[(0, lane, value) for lane in lanes], n_steps=n_steps)


# ---------------------------------------------------------------- CC-ME
def test_cc_me_constant_0_vs_127_is_one():
    assert M.cc_me(constant(0), constant(127)) == 1.0
    assert M.cc_me(constant(0, lanes=range(10)), constant(127, lanes=range(10))) == 1.0


def test_cc_me_identical_is_zero_and_symmetric_for_equal_lengths():
    a = perf_with(cc_events=[(0, 0, 10), (40, 0, 100), (90, 3, 7)])
    b = perf_with(cc_events=[(0, 0, 60), (70, 2, 127)])
    assert M.cc_me(a, a) == 0.0
    assert M.cc_me(a, b) == pytest.approx(M.cc_me(b, a))


def test_cc_me_hand_computed_half_window():
    ref = perf_with(cc_events=[(0, 0, 0)])
    est = perf_with(cc_events=[(0, 0, 0), (64, 0, 127)])  # wrong for half the window
    assert M.cc_me(ref, est) == pytest.approx(0.5)


def test_cc_depth_is_the_set_lanes_mean_standard_deviation_over_time():
    assert M.cc_depth(perf_with()) == 0.0  # no lane set
    assert M.cc_depth(constant(64, lanes=(0, 3))) == 0.0
    square = perf_with(cc_events=[(0, 0, 0), (64, 0, 127), (0, 1, 50)])  # 0 then 127: std 0.5; lane 1 flat
    assert M.cc_depth(square) == pytest.approx(0.25)


def test_cc_motion_is_the_set_lanes_mean_summed_change():
    assert M.cc_motion(perf_with()) == 0.0 and M.cc_motion(constant(64, lanes=(0, 3))) == 0.0
    square = perf_with(cc_events=[(0, 0, 0), (64, 0, 127), (0, 1, 50)])  # lane 0 jumps once by 1.0; lane 1 flat
    assert M.cc_motion(square) == pytest.approx(0.5)
    # the same depth, jittering: 0 / 127 every 32 steps moves 3 times as far
    jitter = perf_with(cc_events=[(t, 0, 127 * (t // 32 % 2)) for t in range(0, 128, 32)])
    assert M.cc_depth(jitter) == pytest.approx(0.5) and M.cc_motion(jitter) == pytest.approx(3.0)


def test_cc_me_lanes_present_in_union_and_missing_lane_is_default():
    # lane 0 set on both sides and equal; lane 2 only in the estimate -> ref counts as default there
    ref = perf_with(cc_events=[(0, 0, 30)])
    est = perf_with(cc_events=[(0, 0, 30), (0, 2, 127)])
    d = default_value(DEFAULT_CC_NUMBERS[2]) / 127
    per = M.cc_me_per_lane(ref, est)
    assert set(per) == {DEFAULT_CC_NUMBERS[0], DEFAULT_CC_NUMBERS[2]}
    assert per[DEFAULT_CC_NUMBERS[2]] == pytest.approx((1 - d) ** 2)
    assert M.cc_me(ref, est) == pytest.approx((1 - d) ** 2 / 2)  # mean over the 2 present lanes, not 10
    # a controller the estimate does not monitor at all also counts as its default curve
    est_other = perf_with(cc_events=[(0, 0, 30)], cc_numbers=(74, 71))
    ref_other = perf_with(cc_events=[(0, 0, 30), (0, 1, 20)], cc_numbers=(74, 16))
    assert M.cc_me_per_lane(ref_other, est_other)[16] == pytest.approx((20 / 127 - 64 / 127) ** 2)
    # nothing set anywhere: both are the default curves
    assert M.cc_me(perf_with(), perf_with()) == 0.0


def test_cc_me_length_rules_hold_and_truncate():
    ref = perf_with(cc_events=[(0, 0, 127)], n_steps=128)
    short = perf_with(cc_events=[(0, 0, 0), (63, 0, 127)], n_steps=64)  # ends at 127: held for steps 64..127
    assert M.cc_me(ref, short) == pytest.approx(63 / 128)
    assert M.length_mismatch_steps(ref, short) == -64
    long = perf_with(cc_events=[(0, 0, 127), (128, 0, 0)], n_steps=256)  # wrong only past the ref: truncated
    assert M.cc_me(ref, long) == 0.0
    assert M.length_mismatch_steps(ref, long) == 128


# ---------------------------------------------------------------- notes
def test_note_f1_identical_is_one_and_one_step_shift_is_zero():
    ref = perf_with()
    assert M.note_f1(ref, ref) == 1.0
    shifted = perf_with(notes=[(o + 1, d, p, v) for o, d, p, v in NOTES])
    assert M.note_f1(ref, shifted) == 0.0
    # offsets and velocities are ignored, the semitone is exact
    other_dur = perf_with(notes=[(o, d + 1, p, 1) for o, d, p, v in NOTES])
    assert M.note_f1(ref, other_dur) == 1.0
    assert M.note_f1(ref, perf_with(notes=[(o, d, p + 1, v) for o, d, p, v in NOTES])) == 0.0


def test_note_f1_partial_and_empty():
    ref = perf_with()
    half = perf_with(notes=NOTES[:2] + [(1, 1, 90, 90), (2, 1, 91, 90)])  # 2 hits of 4 est, 5 ref
    p, r, f = M.note_prf(ref, half)
    assert (p, r) == (0.5, 0.4)
    assert f == pytest.approx(2 * 0.5 * 0.4 / 0.9)
    empty = perf_with(notes=[])
    assert M.note_f1(empty, empty) == 1.0 and M.note_f1(ref, empty) == 0.0


def test_frame_accuracy_hand_computed():
    ref = perf_with(notes=[(0, 4, 40, 100)])
    est = perf_with(notes=[(2, 4, 40, 100)])  # overlap steps 2,3; union 0..5
    assert M.frame_accuracy(ref, est) == pytest.approx(2 / 6)
    assert M.frame_accuracy(ref, ref) == 1.0


def test_token_accuracy_ignores_pad():
    logits = np.zeros((2, 3, 5))
    logits[0, :, 3] = 1  # predicts 3 everywhere
    logits[1, :, 4] = 1
    targets = np.array([[3, 3, 0], [4, 1, 0]])
    np.testing.assert_allclose(M.token_accuracy(logits, targets), [1.0, 0.5])


# ---------------------------------------------------------------- uncertainty
def test_bootstrap_ci_contains_mean_and_is_seeded():
    x = np.random.default_rng(1).normal(3.0, 1.0, size=200)
    lo, hi = M.bootstrap_ci(x, seed=0)
    assert lo < x.mean() < hi
    assert (lo, hi) == M.bootstrap_ci(x, seed=0)
    assert hi - lo < 0.5  # ~ 4 * sigma / sqrt(200) = 0.28
    assert M.bootstrap_ci([2.0]) == (2.0, 2.0)
    s = M.summarize([1.0, np.nan, 3.0])
    assert s["value"] == 2.0 and s["n"] == 2


def test_paired_test_detects_shift_and_not_noise():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 60)
    better = M.paired_test(a + 0.5 + rng.normal(0, 0.1, 60), a)
    assert better["mean_diff"] == pytest.approx(0.5, abs=0.05)
    assert better["p_wilcoxon"] < 1e-6 and better["p_bootstrap"] < 0.01
    same = M.paired_test(a, a)
    assert same["p_wilcoxon"] == 1.0 and same["mean_diff"] == 0.0


# ---------------------------------------------------------------- distributions and priors
def test_overlapping_area_identical_is_one_and_disjoint_is_zero():
    a = [perf_with(cc_events=[(0, 0, 10), (50, 0, 90)])]
    b = [perf_with(notes=[(o, d + 40, p + 30, 10) for o, d, p, v in NOTES], cc_events=[(0, 0, 10)])]
    oa = M.overlapping_area(a, a)
    assert all(v == pytest.approx(1.0) for v in oa.values())
    ob = M.overlapping_area(b, a)
    assert ob["pitch"] == 0.0 and ob["velocity"] == 0.0 and ob["duration"] == 0.0
    assert ob["cc_slope"] == 0.0  # b's CC never moves


def test_muspy_metrics_match_muspy_and_pin_the_window():
    p = perf_with()  # last note ends at step 120: muspy's own grid is already 4 bars
    m = M.muspy_metrics(p)
    music = p.to_muspy()
    assert m["pitch_entropy"] == pytest.approx(muspy.pitch_entropy(music))
    assert m["groove_consistency"] == pytest.approx(muspy.groove_consistency(music, 32))
    assert m["empty_beat_rate"] == pytest.approx(muspy.empty_beat_rate(music))
    # notes only in bar 1: muspy alone sees one measure (NaN); pinned to 128 steps it sees 4
    early = perf_with(notes=[(0, 4, 40, 100), (8, 4, 40, 100)])
    assert math.isnan(muspy.groove_consistency(early.to_muspy(), 32))
    # bars 1->2 differ in 2 onsets, 2->3 and 3->4 are both empty: 1 - 2 / (32 * 3)
    assert M.muspy_metrics(early)["groove_consistency"] == pytest.approx(1 - 2 / 96)
    assert M.muspy_metrics(early)["empty_beat_rate"] == pytest.approx(14 / 16)


def test_cc_activity_and_validity():
    tok = Tokenizer(TokenizerConfig())
    p = perf_with(cc_events=[(0, 0, 10), (50, 0, 90), (70, 1, 3)])
    act = M.cc_activity(p)
    assert act["cc_moving_lanes"] == 2.0 and act["cc_changes_per_bar"] == pytest.approx(3 / 4)
    ids = tok.encode(p)
    assert M.is_valid(ids, tok)
    assert not M.is_valid(ids[:-1], tok)  # no EOS
    on = np.nonzero(tok.token_types(ids) == 2)[0][0]
    assert not M.is_valid(np.delete(ids, on - 1), tok)  # NOTE_ON without its VELOCITY
    assert not M.is_valid(tok.encode(perf_with(notes=[])), tok)


def test_novelty_zero_for_a_copy_and_positive_otherwise():
    train = [perf_with(), perf_with(notes=NOTES[:2], cc_events=[(0, 0, 100)])]
    d = M.novelty([perf_with(), perf_with(notes=NOTES[:3], cc_events=[(0, 0, 100)])], train)
    assert d[0] == 0.0
    # nearest is train[1]: CC identical, rolls share 2 notes' cells of 3
    inter = 4 + 4
    assert d[1] == pytest.approx(0.5 * (1 - inter / (inter + 8)))


# ---------------------------------------------------------------- audio
@pytest.mark.skipif(importlib.util.find_spec("vaelib.evaluation.mrstft") is None, reason="vaelib.evaluation.mrstft (helper C) not landed")
def test_mr_stft_noise_floor_is_zero():
    from vaelib.evaluation.mrstft import mr_stft_performances

    p = perf_with(cc_events=[(0, 0, 20), (64, 0, 120)])
    floor = mr_stft_performances([p], [p], sample_rate=22050)
    assert np.asarray(floor).shape == (1,)
    assert float(floor[0]) == pytest.approx(0.0, abs=1e-6)
    other = mr_stft_performances([p], [perf_with(notes=NOTES[:2])], sample_rate=22050)
    assert float(other[0]) > 0.1
