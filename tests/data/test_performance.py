"""Performance: muspy round trip, piano roll, CC views and normalisation invariants."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vaelib.controllers import CONTROLLERS
from vaelib.data.performance import Performance
from vaelib.data.synthetic import generate

T = 128


@st.composite
def performances(draw):
    notes = draw(st.lists(st.tuples(st.integers(0, T - 1), st.integers(1, T), st.integers(0, 127),
                                    st.integers(1, 127)), max_size=30))
    ev = draw(st.lists(st.tuples(st.integers(0, T - 1), st.integers(0, 9), st.integers(0, 127)), max_size=200))
    return Performance.from_events(notes, sorted(ev, key=lambda e: e[0]), tempo_bpm=draw(st.floats(60, 200)))


@settings(max_examples=60, deadline=None)
@given(performances())
def test_muspy_round_trip(perf):
    music = perf.to_muspy()
    assert Performance.from_muspy(music) == perf
    n_cc = sum(a.group == "control_change" for a in music.tracks[0].annotations)
    assert n_cc == int(perf.cc_changes().sum())


def test_muspy_round_trip_synthetic():
    for p in generate(6, seed=2):
        back = Performance.from_muspy(p.to_muspy())
        assert back == p and back.n_notes == p.n_notes


def test_piano_roll_marks_exactly_the_notes():
    p = Performance.from_events([(0, 4, 40, 100), (10, 2, 52, 30)], [])
    roll = p.piano_roll()
    assert roll.shape == (128, T) and roll.dtype == np.uint8
    assert roll[40, :4].tolist() == [100] * 4 and roll[40, 4] == 0
    assert roll[52, 10:12].tolist() == [30, 30]
    assert np.count_nonzero(roll) == 6


def test_cc_curves_are_normalised_and_use_defaults_for_unset_lanes():
    p = Performance.from_events([(0, 4, 40, 100)], [(5, 0, 127), (9, 0, 0)])
    curves = p.cc_curves()
    assert curves.shape == (10, T) and curves.min() >= 0.0 and curves.max() <= 1.0
    assert curves[0, 5] == 1.0 and curves[0, 9] == 0.0
    assert np.allclose(curves[1], CONTROLLERS[1].default / 127)
    assert curves[0, 0] == CONTROLLERS[0].default / 127  # before its first value, a lane is its default
    for q in generate(3, seed=1):
        c = q.cc_curves()
        assert np.all((c >= 0) & (c <= 1))


def test_normalized_invariants():
    # same-pitch overlap is cut at the next onset, notes are clipped to the window, values clipped
    p = Performance.from_events([(0, 20, 40, 90), (8, 4, 40, 90), (120, 30, 41, 90), (130, 2, 42, 9)],
                                [(3, 1, 200)])
    assert p.notes.tolist() == [[0, 8, 40, 90], [8, 4, 40, 90], [120, 8, 41, 90]]
    assert p.cc[1, 3] == 127 and np.all(p.cc[1, :3] == -1) and np.all(p.cc[1, 3:] == 127)
    assert p.normalized() == p


def test_normalized_keeps_one_of_duplicate_notes():
    p = Performance.from_events([(8, 4, 40, 90), (8, 4, 40, 90)], [])
    assert p.notes.tolist() == [[8, 4, 40, 90]]
    # of rows sharing (onset, pitch) the last one given is kept, and it still ends at the next onset
    q = Performance.from_events([(8, 9, 40, 90), (2, 3, 41, 5), (8, 4, 40, 30), (10, 1, 40, 7)], [])
    assert q.notes.tolist() == [[2, 3, 41, 5], [8, 2, 40, 30], [10, 1, 40, 7]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-2, T + 2), st.integers(-1, T), st.integers(0, 5), st.integers(1, 127)),
                max_size=30))
def test_normalized_is_idempotent_and_keeps_every_distinct_onset(rows):
    p = Performance.from_events(rows, [])
    assert p.normalized() == p
    keys = {(o, q) for o, _, q, _ in rows if 0 <= o < T}
    assert sorted(keys) == [tuple(r) for r in p.notes[:, [0, 2]].tolist()]
    assert np.all(p.notes[:, 1] >= 1)
