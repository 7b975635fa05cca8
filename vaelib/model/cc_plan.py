"""z's plan of the automation: every CC lane's value at every grid step, read from z alone.

A CC value is a level on a 0..127 scale, and a lane's curve is smooth or held in steps, so the plan predicts each
lane's value at each step as a *discretised Gaussian* over the 128 values (a mean and a width, normalised over the
values): a value one off from the truth costs little, where a 128-way categorical head would treat it as wrong as any
other and learn each level from its own few examples. Its log-probabilities serve two uses:

* the training aid of ``TrainConfig.cc_weight`` (the CE of the true values, like the notes head's loss), and
* with ``ModelConfig.cc_copy``, a bias on the decoder's CC logits: at a position whose elapsed time is step e, the id
  (lane l, value v) gets ``gain_l · log p_plan(v | l, e)`` added to its logit. The factorised head scores a CC id as
  kind + value, so on its own it gives every lane the same value distribution at a position; the bias gives each lane
  its own, from z. It depends on z and the elapsed step (from the past tokens) only, so the decoder stays causal and
  the KV-cached decoder applies the same bias.

With ``ModelConfig.cc_plan_mix`` = K > 1 each lane's value at a step is a mixture of K such Gaussians (its own
weights, means and widths). A lane often takes one of a few levels (a glide open or shut, an accent's drive or the
plain one), and z need not say which of them holds at each step when the decoder can tell from the notes: one
Gaussian has to cover both levels with one broad hump, a mixture keeps a narrow peak on each.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vaelib.config import ModelConfig

N_VALUES = 128


class CCPlan(nn.Module):
    """z's slots -> (B, n_steps, n_cc, 128) log-probabilities of each lane's value at each grid step.

    The read-out mirrors the notes head: with beat slots each slot is read into its own steps by weights that every
    slot shares; otherwise one linear map reads all of z into every step."""

    def __init__(self, c: ModelConfig, n_slots: int, slot_dim: int, n_cc: int):
        super().__init__()
        self.n_steps, self.n_cc, self.n_slots = c.steps_per_bar * c.n_bars, n_cc, n_slots
        self.read = nn.Linear(slot_dim, self.n_steps // n_slots * c.notes_slot_dim)
        self.up = nn.Sequential(nn.Linear(c.notes_slot_dim, c.d_model), nn.LayerNorm(c.d_model))
        self.pos = nn.Parameter(torch.zeros(self.n_steps, c.d_model))
        self.mlp = nn.Sequential(nn.LayerNorm(c.d_model), nn.Linear(c.d_model, 2 * c.d_model), nn.GELU(),
                                 nn.Linear(2 * c.d_model, c.d_model))
        self.n_mix = c.cc_plan_mix
        if self.n_mix < 1:
            raise ValueError(f"cc_plan_mix must be >= 1, got {self.n_mix}")
        # per lane: mean and width (one Gaussian), or weight, mean and width per component
        self.out = nn.Sequential(nn.LayerNorm(c.d_model),
                                 nn.Linear(c.d_model, n_cc * (2 if self.n_mix == 1 else 3 * self.n_mix)))
        self.gain = nn.Parameter(torch.ones(n_cc))  # cc_copy: the bias's weight per lane
        self.register_buffer("values", torch.arange(N_VALUES, dtype=torch.float32), persistent=False)
        # the components' means start spread over the scale (31.5 and 95.5 for two), not all at its middle
        self.register_buffer("centres", torch.linspace(-0.5, 0.5, self.n_mix) * (self.n_mix > 1) * 64.0,
                             persistent=False)

    def reset_parameters(self) -> None:
        """After the VAE's 0.02-std init: z's read-out keeps PyTorch's fan-in init (as the notes head's, so z's signal
        is not shrunk under the position table) and the positions start at the embeddings' scale."""
        self.read.reset_parameters()
        self.up[0].reset_parameters()
        nn.init.normal_(self.pos, std=0.02)
        nn.init.ones_(self.gain)

    def forward(self, slots: torch.Tensor) -> torch.Tensor:
        """slots (B, n_slots, slot_dim): z as ``VAE.slots`` lays it out (one slot holding all of z without beat
        slots) -> (B, n_steps, n_cc, 128) log-probabilities."""
        B = slots.shape[0]
        # n_slots read-outs: z's slots as they are, or grouped in time order (a bar's beat slots side by side)
        code = self.read(slots.reshape(B, self.n_slots, -1)).reshape(B, self.n_steps, -1)
        h = self.up(code) + self.pos
        h = h + self.mlp(h)
        raw = self.out(h).float()
        if self.n_mix == 1:
            mean, width = raw.view(B, self.n_steps, self.n_cc, 2).unbind(-1)
        else:
            weight, mean, width = raw.view(B, self.n_steps, self.n_cc, self.n_mix, 3).unbind(-1)
        # at init (outputs ~0): mean mid-scale (or the components' centres), width ~20 values; the width can shrink
        # to half a value
        mean = 63.5 + self.centres + 64.0 * mean
        sigma = 0.5 + 29.0 * F.softplus(width)
        score = (-0.5 * ((self.values - mean[..., None]) / sigma[..., None]) ** 2).log_softmax(-1)
        if self.n_mix == 1:
            return score  # (B, S, n_cc, 128)
        return (score + weight.log_softmax(-1)[..., None]).logsumexp(-2)  # (B, S, n_cc, 128)

    def bias_rows(self, log_probs: torch.Tensor) -> torch.Tensor:
        """(B, S, n_cc, 128) -> (B, S + 1, n_cc * 128): each lane's gained log-probabilities per step, in the
        vocabulary's CC order (lane-major). At the window's end the lanes hold their last step's values: a row of
        zeros there would raise every CC id by ~log 128 against the steps before it, just where EOS is due."""
        B, S = log_probs.shape[:2]
        rows = (log_probs * self.gain[:, None]).reshape(B, S, -1)
        return torch.cat([rows, rows[:, -1:]], 1)

    @staticmethod
    def bias_at(rows: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        """rows (B, S + 1, K), elapsed (B, T) grid steps -> (B, T, K) the bias at each position's elapsed step."""
        B, T = elapsed.shape
        e = elapsed.clamp(max=rows.shape[1] - 1)
        return rows.gather(1, e[..., None].expand(B, T, rows.shape[2]))
