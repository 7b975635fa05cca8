"""Synthetic corpus: determinism, styles, tempo, all lanes moving and coupled, complexity sets density."""
import numpy as np
import pytest

from vaelib.controllers import BY_NAME, DEFAULT_CC_NUMBERS
from vaelib.data.synthetic import STYLES, TEMPO_BPM, generate
from vaelib.data.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def corpus():
    return generate(90, seed=7)


def _lane(p, name):
    return p.cc[DEFAULT_CC_NUMBERS.index(BY_NAME[name].number)].astype(float)


def test_deterministic_and_prefix_stable(corpus):
    again = generate(90, seed=7)
    assert all(a == b and a.source == b.source and a.style == b.style for a, b in zip(corpus, again))
    assert all(a == b for a, b in zip(generate(10, seed=7), corpus[:10]))  # example i ignores n_examples
    other = generate(10, seed=8)
    assert sum(a == b for a, b in zip(other, corpus[:10])) == 0


def test_styles_sources_and_tempo(corpus):
    styles = [p.style for p in corpus]
    assert set(styles) == set(STYLES) and all(styles.count(s) == 30 for s in STYLES)
    assert len({p.source for p in corpus}) == len(corpus)
    for p in corpus:
        lo, hi = TEMPO_BPM[p.style]
        assert 130 <= lo <= p.tempo_bpm <= hi <= 175
        assert p.n_steps == 128 and p.steps_per_bar == 32 and p.n_notes >= 4
        assert p.cc_numbers == DEFAULT_CC_NUMBERS and np.all(p.cc >= 0)  # full snapshot at step 0
        assert p == p.normalized()


def test_every_lane_moves_in_every_example(corpus):
    for p in corpus:
        moving = p.cc_changes()[:, 1:].any(axis=1)
        assert moving.all(), (p.source, moving)


def test_lanes_are_coupled_not_independent(corpus):
    # resonance follows cutoff; drive follows the accented notes
    corr = [np.corrcoef(_lane(p, "cutoff"), _lane(p, "resonance"))[0, 1] for p in corpus]
    assert np.median(np.abs(corr)) > 0.5
    acc = []
    for p in corpus:
        vel_at = np.zeros(p.n_steps)
        vel_at[p.notes[:, 0]] = p.notes[:, 3]
        on = vel_at > 0
        acc.append(np.corrcoef(vel_at[on], _lane(p, "drive")[on])[0, 1])
    assert np.nanmedian(acc) > 0.5


def test_examples_vary_within_a_style(corpus):
    for s in STYLES:
        ps = [p for p in corpus if p.style == s]
        assert len({round(p.tempo_bpm, 1) for p in ps}) > 20
        assert len({int(np.median(p.notes[:, 2])) for p in ps}) > 5  # register
        assert len({int(p.cc_changes().sum()) for p in ps}) > 10  # density


def test_complexity_raises_cc_density():
    def density(c):
        return np.mean([p.cc_changes()[:, 1:].sum() for p in generate(60, seed=3, complexity=c)])
    lo, mid, hi = density(0.1), density(0.6), density(1.0)
    assert lo < mid < hi and hi > 1.4 * lo


def test_token_lengths_fit_the_paper_budget(corpus):
    tok = Tokenizer()  # the paper's 1,024-token budget
    lengths = np.array([len(tok.encode(p)) for p in corpus])
    assert all(tok.fit(p)[1] == 1 for p in corpus)  # nothing needed thinning
    assert np.all(lengths <= 1024) and 200 < np.median(lengths) < 450


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        generate(1, steps_per_bar=24)
    with pytest.raises(ValueError):
        generate(1, complexity=1.5)
    short = generate(3, n_bars=2, steps_per_bar=16)
    assert all(p.n_steps == 32 and p.n_notes > 0 for p in short)
