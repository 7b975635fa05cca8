"""Training schedules as pure functions of the optimizer step: cyclical β (Fu et al. 2019) and LR warmup + cosine,
with an optional linear cool-down over the last steps (warmup-stable-decay when the cosine is flat).

Both are defined over ``total_steps = epochs * steps_per_epoch`` (see ``total_steps``), where ``steps_per_epoch``
is the number of batches one epoch actually yields. The β cycles therefore follow epochs, not a step count fixed
in advance, so changing the batch size or token budget does not silently change how many cycles a run sees.
``max_steps`` only truncates a run; it never rescales the schedules (so a capped run and its resume agree).
"""
from __future__ import annotations

import math


def total_steps(epochs: int, steps_per_epoch: int) -> int:
    """Planned optimizer steps of a run: epochs x batches per epoch (>= 1)."""
    return max(1, int(epochs) * int(steps_per_epoch))


def beta_at(step: int, total_steps: int, beta_max: float, n_cycles: int = 4, ramp_ratio: float = 0.5,
            zero_frac: float = 0.0) -> float:
    """Cyclical KL weight β at optimizer step ``step`` (0-based).

    Training is cut into ``n_cycles`` equal cycles of ``total_steps / n_cycles`` steps. Within a cycle, at
    position τ in [0, 1):
      1. τ < zero_frac:              β = 0 (a pure autoencoding phase; 0 = Fu et al. exactly)
      2. zero_frac <= τ < ramp_ratio: β rises linearly from 0 to β_max
      3. τ >= ramp_ratio:            β = β_max (held for the rest of the cycle)
    Steps at or past ``total_steps`` keep β_max (the last cycle's hold).
    """
    if beta_max == 0.0:
        return 0.0
    if step >= total_steps:
        return float(beta_max)
    period = total_steps / max(1, n_cycles)  # float: cycles need not be whole steps
    tau = (step % period) / period if period > 0 else 1.0
    if tau < zero_frac:
        return 0.0
    if tau >= ramp_ratio or ramp_ratio <= zero_frac:
        return float(beta_max)
    return float(beta_max) * (tau - zero_frac) / (ramp_ratio - zero_frac)


def lr_at(step: int, total_steps: int, lr: float, warmup_steps: int = 0, min_lr_ratio: float = 0.0,
          cooldown_frac: float = 0.0) -> float:
    """Learning rate at optimizer step ``step`` (0-based).

      1. step < warmup_steps: linear warmup, lr * (step + 1) / warmup_steps (never 0, so step 0 already learns)
      2. then cosine decay from lr to lr * min_lr_ratio, reached at ``total_steps``
      3. step >= total_steps: lr * min_lr_ratio
    With ``cooldown_frac`` > 0, the last ``ceil(cooldown_frac * total_steps)`` steps (after the warmup) multiply
    that by a linear ramp from 1 down to 1 / (cool-down steps + 1) at the last step, so the run ends near 0;
    steps at or past ``total_steps`` keep the last step's rate.
    """
    if not 0.0 <= cooldown_frac < 1.0:
        raise ValueError(f"cooldown_frac must be in [0, 1), got {cooldown_frac}")
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    floor = lr * min_lr_ratio
    n_cool = min(math.ceil(cooldown_frac * total_steps), max(0, total_steps - warmup_steps))
    if n_cool and step >= total_steps:
        step = total_steps - 1
    if step >= total_steps:
        return floor
    progress = (step - warmup_steps) / (total_steps - warmup_steps)  # in [0, 1): here total > step >= warmup
    rate = floor + (lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    left = total_steps - step  # steps left including this one: n_cool .. 1 inside the cool-down
    return rate * left / (n_cool + 1) if left <= n_cool else rate
