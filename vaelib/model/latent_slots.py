"""z's slots, mixed into ``vae.VAE``: how z splits into slots (one per beat by default, ``ModelConfig.n_slots``,
``bar_pattern``, ``bar_share``), what each slot's read-out sees (``slots``), and how the encoder's states are pooled
into them (``_beat_pool``; ``_grid_pool`` for pool="grid").
"""
from __future__ import annotations

import math

import torch

from vaelib.data.tokenizer import PAD as PAD_ID


class SlotLayout:
    """z's slot layout and pooling of ``vae.VAE`` (a mixin: the pools use the VAE's layers and token layout)."""

    def _slot_layout(self, c) -> None:
        """n_slots, slot_steps and slot_dim of z's layout (with bar_pattern or bar_share also their parts' dims),
        checked against the config."""
        # pool="beat": z in n_slots equal slots (ModelConfig.n_slots), by default one per beat when latent_dim is a
        # multiple of the window's beats, else one per stretch of gcd(latent_dim, beats) beats
        self.n_slots = c.n_slots or math.gcd(c.latent_dim, 4 * c.n_bars)
        if c.n_slots and c.pool != "beat":
            raise ValueError(f"n_slots needs pool='beat', got pool={c.pool!r}")
        if c.n_slots and (c.n_slots < 1 or c.latent_dim % c.n_slots or (c.steps_per_bar * c.n_bars) % c.n_slots):
            raise ValueError(f"n_slots={c.n_slots} must divide latent_dim ({c.latent_dim}) and the window's "
                             f"{c.steps_per_bar * c.n_bars} grid steps")
        self.slot_steps = c.steps_per_bar * c.n_bars // self.n_slots
        if c.pool == "beat" and c.steps_per_bar % 4:
            raise ValueError(f"pool='beat' needs steps_per_bar divisible by 4, got {c.steps_per_bar}")
        # what each slot's read-out sees: its share of z, or with bar_pattern its beat's pattern and its own variation
        self.slot_dim = c.latent_dim // self.n_slots if c.pool == "beat" else c.latent_dim
        if c.bar_pattern:
            if c.pool != "beat" or self.n_slots != 4 * c.n_bars or self.slot_dim % 4:
                raise ValueError(f"bar_pattern needs pool='beat' with one slot per beat and latent_dim a multiple of "
                                 f"{16 * c.n_bars}, got pool={c.pool!r}, latent_dim={c.latent_dim}")
            self.pattern_dim, self.own_dim = self.slot_dim, 3 * self.slot_dim // 4
            self.slot_dim = self.pattern_dim + self.own_dim
        if c.bar_share:
            chunk = c.latent_dim // c.n_bars  # one bar's share of z: its code and its 4 beats' codes
            self.bar_dim = round(c.bar_share * chunk)
            if (c.pool != "beat" or c.bar_pattern or self.n_slots != 4 * c.n_bars or not 0 < self.bar_dim < chunk
                    or (chunk - self.bar_dim) % 4):
                raise ValueError(f"bar_share needs pool='beat' with one slot per beat, no bar_pattern, and a bar code "
                                 f"of 0 < dims < {chunk} leaving a multiple of 4 for the beats; got pool={c.pool!r}, "
                                 f"latent_dim={c.latent_dim}, bar_share={c.bar_share} ({self.bar_dim} dims)")
            self.beat_dim = (chunk - self.bar_dim) // 4
            self.slot_dim = 4 * self.bar_dim + self.beat_dim  # the bar code at the beat's position, then its own

    def slots(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D) -> (B, n_slots, slot_dim) what each slot's read-out sees: its share of z (beat slots; all of z
        as one slot otherwise), or with ``bar_pattern`` its beat's pattern (z's first 4 x pattern_dim) beside its own
        variation (the rest, one per beat in time order), or with ``bar_share`` its bar's code, placed in the block of
        its position within the bar (4 x bar_dim, zeros elsewhere), beside its own code."""
        B = z.shape[0]
        if self.config.pool != "beat":
            return z[:, None]
        if self.config.bar_share:  # z bar by bar: [bar code | 4 beat codes]
            nb, b = self.config.n_bars, self.bar_dim
            bars = z.view(B, nb, -1)
            at = torch.eye(4, dtype=z.dtype, device=z.device)[:, :, None]  # (beat, position, 1)
            placed = (bars[:, :, None, None, :b] * at).reshape(B, nb, 4, 4 * b)  # zeros but at the beat's position
            return torch.cat([placed, bars[..., b:].reshape(B, nb, 4, -1)], -1).view(B, self.n_slots, -1)
        if not self.config.bar_pattern:
            return z.view(B, self.n_slots, -1)
        n_pat = 4 * self.pattern_dim
        pattern = z[:, :n_pat].view(B, 1, 4, self.pattern_dim).expand(B, self.config.n_bars, 4, self.pattern_dim)
        return torch.cat([pattern.reshape(B, self.n_slots, -1), z[:, n_pat:].view(B, self.n_slots, -1)], -1)

    def _grid_pool(self, ids: torch.Tensor, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """The encoder states of each grid step's NOTE_ON tokens (summed: a step holds one onset or a few), each step
        projected to ``grid_slot_dim`` and concatenated: (B, (n_steps + 1) * grid_slot_dim). Which step a note
        starts on stays bound to its pitch, where a mean over the whole window would blur both into the CC tokens
        around them (about 4 of 5 tokens); the CCs reach z through the mean pool."""
        c = self.config
        S = c.steps_per_bar * c.n_bars + 1
        B, T, d = x.shape
        slot = self.layout.elapsed(ids).clamp(max=S - 1)  # (B, T)
        w = (keep & (self.layout.onoff[ids] == 1)).to(x.dtype)  # NOTE_ON tokens
        grid = x.new_zeros(B, S, d).scatter_add_(1, slot[..., None].expand(B, T, d), x * w[..., None])
        return self.pool_slot(grid).flatten(1)  # a step without onset contributes the bias alone

    def _beat_pool(self, ids: torch.Tensor, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """(B, n_slots, pooled_dim): per slot (beat), the mean state of its tokens (a token belongs to the step it
        happens at), the window's mean state, and each of its steps' NOTE_ON states summed and projected to
        ``grid_slot_dim`` (as in ``_grid_pool``, a step's pitch stays bound to the step); with ``cc_pool`` also each
        of its steps' lane values (scaled to [-1, 1]) and whether each lane is set yet."""
        c = self.config
        B, T, d = x.shape
        S, nb = c.steps_per_bar * c.n_bars, self.n_slots
        step = self.layout.elapsed(ids).clamp(max=S - 1)  # (B, T); the window's end joins the last step
        onset = (keep & (self.layout.onoff[ids] == 1)).to(x.dtype)
        grid = x.new_zeros(B, S, d).scatter_add_(1, step[..., None].expand(B, T, d), x * onset[..., None])
        grid = self.pool_slot(grid) + self.onset_emb(self.layout.onset_targets(ids.masked_fill(~keep, PAD_ID), S))
        grid = grid.view(B, nb, -1)  # (B, nb, slot_steps * grid_slot_dim)
        w = keep.to(x.dtype)
        beat = torch.div(step, self.slot_steps, rounding_mode="floor")
        sums = x.new_zeros(B, nb, d).scatter_add_(1, beat[..., None].expand(B, T, d), x * w[..., None])
        count = x.new_zeros(B, nb).scatter_add_(1, beat, w)
        window = (x * w[..., None]).sum(1) / w.sum(1).clamp_min(1.0)[:, None]  # (B, d)
        parts = [sums / count.clamp_min(1.0)[..., None], window[:, None].expand(B, nb, d), grid]
        if c.cc_pool:
            v = self.layout.cc_targets(ids.masked_fill(~keep, PAD_ID), S)  # (B, S, n_cc), -1 before a lane's first
            on = (v >= 0).to(x.dtype)
            parts.append(torch.cat([on * (v.to(x.dtype) / 63.5 - 1.0), on], -1).view(B, nb, -1))
        return torch.cat(parts, -1)
