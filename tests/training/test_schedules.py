"""Cyclical β (Fu et al. 2019) and LR warmup + cosine at exact steps."""
import math

import pytest

from vaelib.data.batching import steps_per_epoch
from vaelib.training.schedules import beta_at, lr_at, total_steps


def test_beta_cycle_points_without_zero_phase():
    # 400 steps, 4 cycles of 100, ramp over the first half: beta = 8 * tau / 0.5, then held at 8
    kw = dict(total_steps=400, beta_max=8.0, n_cycles=4, ramp_ratio=0.5, zero_frac=0.0)
    assert beta_at(0, **kw) == 0.0
    assert beta_at(25, **kw) == pytest.approx(4.0)
    assert beta_at(49, **kw) == pytest.approx(8.0 * 0.49 / 0.5)
    assert beta_at(50, **kw) == 8.0
    assert beta_at(99, **kw) == 8.0
    assert beta_at(100, **kw) == 0.0  # next cycle restarts
    assert beta_at(325, **kw) == pytest.approx(4.0)
    assert beta_at(400, **kw) == 8.0 and beta_at(10_000, **kw) == 8.0  # past the end: hold


def test_beta_zero_phase_then_ramp():
    kw = dict(total_steps=200, beta_max=2.0, n_cycles=2, ramp_ratio=0.5, zero_frac=0.1)
    assert [beta_at(s, **kw) for s in (0, 5, 9)] == [0.0, 0.0, 0.0]
    assert beta_at(10, **kw) == 0.0  # ramp starts from 0 at tau = zero_frac
    assert beta_at(30, **kw) == pytest.approx(2.0 * (0.3 - 0.1) / (0.5 - 0.1))
    assert beta_at(50, **kw) == 2.0
    assert beta_at(105, **kw) == 0.0 and beta_at(130, **kw) == pytest.approx(1.0)


def test_beta_non_integer_cycle_length_and_zero_beta():
    # 10 steps in 4 cycles: 2.5 steps each, step 5 opens the third cycle
    assert beta_at(5, 10, 8.0, 4, 0.5) == 0.0
    assert beta_at(6, 10, 8.0, 4, 0.5) == pytest.approx(8.0 * 0.4 / 0.5)
    assert all(beta_at(s, 100, 0.0, 4, 0.5, 0.1) == 0.0 for s in range(100))


def test_lr_warmup_then_cosine():
    kw = dict(total_steps=1100, lr=1e-4, warmup_steps=100, min_lr_ratio=0.1)
    assert lr_at(0, **kw) == pytest.approx(1e-6)
    assert lr_at(49, **kw) == pytest.approx(0.5e-4)
    assert lr_at(99, **kw) == pytest.approx(1e-4)
    assert lr_at(100, **kw) == pytest.approx(1e-4)  # cosine starts at the peak
    assert lr_at(600, **kw) == pytest.approx(1e-5 + 0.9e-4 * 0.5)  # halfway: midpoint between peak and floor
    assert lr_at(350, **kw) == pytest.approx(1e-5 + 0.9e-4 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert lr_at(1100, **kw) == pytest.approx(1e-5) and lr_at(5000, **kw) == pytest.approx(1e-5)
    lrs = [lr_at(s, **kw) for s in range(100, 1100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_schedules_follow_epochs_not_batch_size():
    """Halving the token budget doubles the steps per epoch; the schedule stays the same in epochs."""
    lengths = [300 + (i * 7) % 80 for i in range(96)]
    spe_big = steps_per_epoch(lengths, 4096, 64)
    spe_small = steps_per_epoch(lengths, 2048, 64)
    assert spe_small > spe_big
    for spe in (spe_big, spe_small):
        n = total_steps(8, spe)
        # beta peaks halfway through each 2-epoch cycle, at the same epoch whatever the batch size
        assert beta_at(spe, n, 8.0, 4, 0.5) == 8.0
        assert beta_at(2 * spe, n, 8.0, 4, 0.5) == 0.0


def test_lr_cooldown_ramps_down_to_near_zero_at_the_end():
    kw = dict(total_steps=1000, lr=1e-3, warmup_steps=50, min_lr_ratio=1.0)
    assert lr_at(799, **kw, cooldown_frac=0.2) == pytest.approx(1e-3)  # stable until the last 200 steps
    assert lr_at(800, **kw, cooldown_frac=0.2) == pytest.approx(1e-3 * 200 / 201)
    assert lr_at(999, **kw, cooldown_frac=0.2) == pytest.approx(1e-3 / 201)
    assert lr_at(5000, **kw, cooldown_frac=0.2) == pytest.approx(1e-3 / 201)  # past the end: the last step's rate
    cool = [lr_at(s, **kw, cooldown_frac=0.2) for s in range(800, 1000)]
    assert all(a > b > 0 for a, b in zip(cool, cool[1:]))
    assert [lr_at(s, **kw) for s in range(1000)] == [lr_at(s, **kw, cooldown_frac=0.0) for s in range(1000)]
    assert lr_at(10, **kw, cooldown_frac=0.2) == lr_at(10, **kw)  # the warmup is untouched
    with pytest.raises(ValueError, match="cooldown_frac"):
        lr_at(0, **kw, cooldown_frac=1.0)
