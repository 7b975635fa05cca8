"""The tokenizer's id layout as tensors, and what the model derives from a token prefix with it: elapsed grid steps,
sounding pitches, each CC lane's value in force and the onsets per step (the structural inputs and the latent heads'
targets)."""
from __future__ import annotations

import torch
import torch.nn as nn

from vaelib.config import ModelConfig

N_PITCH = 128


class Layout(nn.Module):
    """The tokenizer's id layout as buffers: per id its kind (PAD, BOS, EOS, VELOCITY, NOTE_ON, NOTE_OFF,
    TIME_SHIFT, then one kind per CC lane), its row in the shared value table, its pitch (-1 if none) and the grid
    steps it advances. Built from ``ModelConfig`` (``vocab_size``, ``n_velocity_bins``, ``max_shift``)."""

    def __init__(self, c: ModelConfig):
        super().__init__()
        vel0 = 3
        on0 = vel0 + c.n_velocity_bins
        off0 = on0 + N_PITCH
        shift0 = off0 + N_PITCH
        cc0 = shift0 + c.max_shift
        if c.vocab_size < cc0 or (c.vocab_size - cc0) % 128:
            raise ValueError(f"vocab_size={c.vocab_size} does not fit the layout of {c.n_velocity_bins} velocity "
                             f"bins, {c.max_shift} shifts and 128-value CC lanes")
        self.on0, self.off0, self.shift0, self.cc0 = on0, off0, shift0, cc0
        self.n_cc = (c.vocab_size - cc0) // 128
        ids = torch.arange(c.vocab_size)
        kind = torch.zeros(c.vocab_size, dtype=torch.long)
        kind[:3] = ids[:3]  # PAD, BOS, EOS
        kind[vel0:on0], kind[on0:off0], kind[off0:shift0], kind[shift0:cc0] = 3, 4, 5, 6
        kind[cc0:] = 7 + (ids[cc0:] - cc0) // 128
        # value rows: 0 none (specials), then pitch x128 (NOTE_ON and NOTE_OFF share it), CC value x128 (every
        # lane shares it), velocity bins, shift amounts
        self.pitch_row0, self.ccv_row0 = 1, 1 + N_PITCH
        self.vel_row0 = self.ccv_row0 + 128
        self.shift_row0 = self.vel_row0 + c.n_velocity_bins
        self.n_values = self.shift_row0 + c.max_shift
        value = torch.zeros(c.vocab_size, dtype=torch.long)
        value[vel0:on0] = self.vel_row0 + ids[vel0:on0] - vel0
        value[on0:off0] = self.pitch_row0 + ids[on0:off0] - on0
        value[off0:shift0] = self.pitch_row0 + ids[off0:shift0] - off0
        value[shift0:cc0] = self.shift_row0 + ids[shift0:cc0] - shift0
        value[cc0:] = self.ccv_row0 + (ids[cc0:] - cc0) % 128
        self.n_kinds = 7 + self.n_cc
        self.register_buffer("kind", kind, persistent=False)
        self.register_buffer("value", value, persistent=False)
        self.register_buffer("advance", torch.where(kind == 6, ids - shift0 + 1, 0), persistent=False)
        onoff = torch.zeros(c.vocab_size, dtype=torch.long)  # +1 NOTE_ON, -1 NOTE_OFF
        onoff[on0:off0], onoff[off0:shift0] = 1, -1
        self.register_buffer("onoff", onoff, persistent=False)
        self.register_buffer("pitch", torch.where(onoff != 0, (value - self.pitch_row0), -1), persistent=False)

    def elapsed(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) grid steps elapsed after each token, the token itself included."""
        return self.advance[ids].cumsum(1)

    def cc_hold(self, ids: torch.Tensor, n_steps: int) -> torch.Tensor:
        """(B, T) float: for each CC token, the grid steps its value holds (until the lane's next token, or until
        ``n_steps``, the window's end); 0 for every other token."""
        step = self.elapsed(ids)  # a CC token's own step: it does not advance the time
        lane = torch.where(self.kind[ids] >= 7, self.kind[ids] - 7, -1)  # (B, T)
        end = torch.full_like(step, n_steps)
        hold = torch.zeros(ids.shape, dtype=torch.float32, device=ids.device)
        for l in range(self.n_cc):
            at = lane == l
            if not bool(at.any()):
                continue
            mark = torch.where(at, step, end)  # the lane's token steps, the window's end elsewhere
            after = mark.flip(1).cummin(1).values.flip(1)  # min over positions >= t
            nxt = torch.cat([after[:, 1:], end[:, :1]], 1)  # min over positions > t: the lane's next token's step
            hold = torch.where(at, (nxt - step).clamp_min(0).float(), hold)
        return hold

    def sounding(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T, 128) float: 1 where a pitch sounds after each token, the token itself included."""
        B, T = ids.shape
        d = torch.zeros(B, T, N_PITCH, device=ids.device)
        d.scatter_(2, self.pitch[ids].clamp_min(0)[..., None], self.onoff[ids].float()[..., None])
        return (d.cumsum(1) > 0.5).float()

    def cc_targets(self, ids: torch.Tensor, n_steps: int) -> torch.Tensor:
        """(B, n_steps, n_cc) long: each CC lane's value in force at each grid step (its last CC token at or before
        the step), -1 before the lane's first token."""
        B, T = ids.shape
        lane = self.kind[ids] - 7  # (B, T), >= 0 on CC tokens
        step = self.elapsed(ids)
        ok = (lane >= 0) & (step < n_steps)
        slot = torch.where(ok, lane.clamp_min(0) * n_steps + step.clamp(max=n_steps - 1), 0)
        pos = torch.where(ok, torch.arange(T, device=ids.device).expand(B, T), -1)
        last = torch.full((B, self.n_cc * n_steps), -1, dtype=torch.long, device=ids.device)
        last.scatter_reduce_(1, slot, pos, reduce="amax", include_self=True)
        # token positions grow with time, so the running max over steps is the lane's last token so far
        last = last.view(B, self.n_cc, n_steps).cummax(-1).values
        value = ((ids - self.cc0) % 128).gather(1, last.clamp_min(0).flatten(1)).view(B, self.n_cc, n_steps)
        return torch.where(last >= 0, value, -1).transpose(1, 2)

    def onset_targets(self, ids: torch.Tensor, n_steps: int) -> torch.Tensor:
        """(B, n_steps) long: per grid step 0 if no note starts there, else 1 + the lowest pitch starting there."""
        big = N_PITCH + 1
        el = self.elapsed(ids).clamp(max=n_steps - 1)
        on = (self.onoff[ids] == 1) & (self.elapsed(ids) < n_steps)
        val = torch.where(on, self.pitch[ids] + 1, big)
        out = torch.full((ids.shape[0], n_steps), big, dtype=torch.long, device=ids.device)
        out.scatter_reduce_(1, el, val, reduce="amin", include_self=True)
        return torch.where(out == big, 0, out)
