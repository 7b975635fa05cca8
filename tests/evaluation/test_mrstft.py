"""MR-STFT: zero on identical audio, positive on changes, equal to auraloss per pair, silent-target guard,
and the performance-level helper (in process and in a process pool)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vaelib.evaluation.mrstft import loss_module, mr_stft, mr_stft_performances
from vaelib.data.performance import Performance
from vaelib.synth import render

SR = 22050


def perf(seed: int, n_steps: int = 32) -> Performance:
    """A short random bassline with cutoff motion (different seeds -> different performances)."""
    rng = np.random.default_rng(seed)
    notes = [(s, int(rng.integers(1, 4)), 30 + int(rng.integers(0, 14)), int(rng.integers(60, 127)))
             for s in range(0, n_steps, 4)]
    cc = [(t, 0, int(64 + 50 * np.sin(t / (2 + seed)))) for t in range(n_steps)]
    return Performance.from_events(notes, cc, n_steps=n_steps, tempo_bpm=140.0)


@pytest.fixture(scope="module")
def audio():
    return render(perf(0)), render(perf(1))


def test_identical_is_zero_and_changes_are_positive(audio):
    a, b = audio
    assert mr_stft(a, a) == 0.0
    shift = int(round(0.001 * SR))
    shifted = np.concatenate([np.zeros(shift, np.float32), a[:-shift]])
    d_shift, d_quiet, d_other = mr_stft(shifted, a), mr_stft(0.5 * a, a), mr_stft(b, a)
    noise = np.random.default_rng(0).standard_normal(a.size).astype(np.float32) * 0.1
    d_noise = mr_stft(noise, a)
    assert 0.0 < d_shift < d_quiet < d_other < d_noise, (d_shift, d_quiet, d_other, d_noise)


def test_equals_auraloss_on_one_pair(audio):
    a, b = audio
    direct = float(loss_module()(torch.tensor(b).reshape(1, 1, -1), torch.tensor(a).reshape(1, 1, -1)))
    assert mr_stft(b, a) == pytest.approx(direct, rel=1e-5)


def test_batching_would_change_the_value(audio):
    # why mr_stft is per pair: spectral convergence takes one norm over the whole batch
    a, b = audio
    ests, targets = torch.tensor(np.stack([b, 0.5 * a]))[:, None], torch.tensor(np.stack([a, a]))[:, None]
    batched = float(loss_module()(ests, targets))
    per_pair = np.mean([mr_stft(b, a), mr_stft(0.5 * a, a)])
    assert abs(batched - per_pair) > 1e-3


def test_silent_target_is_nan_not_a_huge_number(audio):
    a, _ = audio
    silence = np.zeros_like(a)
    assert float(loss_module()(torch.tensor(a).reshape(1, 1, -1), torch.tensor(silence).reshape(1, 1, -1))) > 1e3
    assert np.isnan(mr_stft(a, silence))
    assert mr_stft(silence, silence) == 0.0
    assert np.isfinite(mr_stft(silence, a))
    with pytest.raises(ValueError, match="equal lengths"):
        mr_stft(a[:-1], a)


def test_performances_in_process_match_pairwise_renders():
    refs = [perf(0), perf(1), perf(0), Performance.empty(32)]
    ests = [perf(0), perf(2), perf(3), perf(1)]
    got = mr_stft_performances(refs, ests, n_workers=1)
    want = [mr_stft(render(e), render(r)) for r, e in zip(refs, ests)]
    np.testing.assert_allclose(got[:3], want[:3], rtol=1e-6)
    assert got[0] == 0.0 and np.isnan(got[3])


@pytest.mark.slow  # spawns two worker processes (torch import in each: a few seconds)
def test_process_pool_gives_the_same_values():
    refs = [perf(i % 3) for i in range(6)]
    ests = [perf(i + 3) for i in range(6)]
    np.testing.assert_allclose(mr_stft_performances(refs, ests, n_workers=2),
                               mr_stft_performances(refs, ests, n_workers=1), rtol=1e-6)
