"""What the window held one bar earlier, as a decoder input (``ModelConfig.bar_lag``).

Basslines loop: a bar's onsets and its automation mostly repeat the bar before. At a decoder position whose tokens
have reached grid step e, this input holds the grid steps e - steps_per_bar and e - steps_per_bar + 1 (the step the
next event falls on and the one after it, one bar back): the lowest onset pitch there (through the model's pitch
table; a learned row for "no onset" and one for "before the window") and each CC lane's value in force there. Both
steps lie before e, so the input comes from past tokens only and the decoder stays causal. Teacher forcing reads the
steps from the whole sequence's grids; incremental decoding fills the same grids as the tokens arrive
(``LagState``), so cached decoding equals teacher forcing.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from vaelib.model.layout import Layout


@dataclass
class LagState:
    """The grids of one incremental decode: per step the lowest onset (0 none, else 1 + pitch) and each lane's
    value in force (-1 unset), filled for the steps already passed; and each lane's current value."""
    onsets: torch.Tensor  # (B, S) long
    cc: torch.Tensor  # (B, S, n_cc) long
    cc_now: torch.Tensor  # (B, n_cc) long

    def keep_rows(self, keep: torch.Tensor) -> None:
        self.onsets, self.cc, self.cc_now = self.onsets[keep], self.cc[keep], self.cc_now[keep]


class BarLag(nn.Module):
    def __init__(self, d_model: int, n_cc: int, steps_per_bar: int, n_steps: int):
        super().__init__()
        self.lag, self.n_steps, self.n_cc = steps_per_bar, n_steps, n_cc
        self.special = nn.Parameter(torch.zeros(2, d_model))  # rows: before the window, no onset
        self.proj = nn.Sequential(nn.Linear(2 * d_model + 4 * n_cc, d_model), nn.LayerNorm(d_model))

    def reset_parameters(self) -> None:
        nn.init.normal_(self.special, std=0.02)
        # the input's gain starts at the token embeddings' 0.02 scale, as the plan input's does
        nn.init.constant_(self.proj[1].weight, 0.02)

    def features(self, onsets: torch.Tensor, cc: torch.Tensor, elapsed: torch.Tensor,
                 pitch_table: torch.Tensor) -> torch.Tensor:
        """onsets (B, S), cc (B, S, n_cc), elapsed (B, T) -> (B, T, d): the input at each position."""
        B, T = elapsed.shape
        table = torch.cat([self.special.to(pitch_table.dtype), pitch_table], 0)  # (2 + 128, d)
        parts_note, parts_cc = [], []
        for k in (0, 1):
            s = elapsed - self.lag + k
            valid = s >= 0
            sc = s.clamp(0, self.n_steps - 1)
            o = onsets.gather(1, sc)  # (B, T)
            parts_note.append(table[torch.where(valid, o + 1, 0)])
            v = cc.gather(1, sc[..., None].expand(B, T, self.n_cc))  # (B, T, n_cc)
            on = valid[..., None] & (v >= 0)
            parts_cc += [torch.where(on, v.float() / 127.0, 0.0), on.float()]
        x = torch.cat(parts_note + [p.to(table.dtype) for p in parts_cc], -1)
        return self.proj(x)

    def forward(self, layout: Layout, ids: torch.Tensor, pitch_table: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> (B, T, d), teacher forced."""
        return self.features(layout.onset_targets(ids, self.n_steps), layout.cc_targets(ids, self.n_steps),
                             layout.elapsed(ids), pitch_table)

    def start(self, batch: int, device) -> LagState:
        S, n = self.n_steps, self.n_cc
        return LagState(torch.zeros(batch, S, dtype=torch.long, device=device),
                        torch.full((batch, S, n), -1, dtype=torch.long, device=device),
                        torch.full((batch, n), -1, dtype=torch.long, device=device))

    def step(self, st: LagState, layout: Layout, tokens: torch.Tensor, before: torch.Tensor, after: torch.Tensor,
             pitch_table: torch.Tensor) -> torch.Tensor:
        """Advance the grids with ``tokens`` (B,) that took the elapsed steps from ``before`` to ``after`` (B,);
        -> (B, 1, d) the input at the new position."""
        S = self.n_steps
        steps = torch.arange(S, device=tokens.device)
        # a time shift closes the steps it passes: each lane's value in force there is its current value
        passed = (steps >= before[:, None]) & (steps < after[:, None])  # (B, S)
        st.cc = torch.where(passed[..., None], st.cc_now[:, None, :], st.cc)
        lane = layout.kind[tokens] - 7
        is_cc = lane >= 0
        if bool(is_cc.any()):
            value = (tokens - layout.cc0) % 128
            cur = st.cc_now.gather(1, lane.clamp_min(0)[:, None])[:, 0]
            st.cc_now = st.cc_now.scatter(1, lane.clamp_min(0)[:, None], torch.where(is_cc, value, cur)[:, None])
        is_on = (layout.onoff[tokens] == 1) & (after < S)
        if bool(is_on.any()):
            at = after.clamp(max=S - 1)[:, None]
            old = st.onsets.gather(1, at)[:, 0]
            code = layout.pitch[tokens] + 1
            new = torch.where(is_on & ((old == 0) | (code < old)), code, old)
            st.onsets = st.onsets.scatter(1, at, new[:, None])
        return self.features(st.onsets, st.cc, after[:, None], pitch_table)
