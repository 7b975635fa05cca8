"""Incremental decoding with per-layer K/V caches, mixed into ``vae.VAE``: ``start(z)`` allocates the caches and
projects z's memory once, ``step(tokens, state)`` decodes one position in O(T) instead of recomputing the prefix, and
``greedy(z)`` decodes with them. The structural inputs, the plan input, the bar-lag input, the CC plan's bias and the
CC cache's follow the elapsed time, sounding pitches, grids and CC counts tracked in the ``DecodeState``, so cached
decoding equals teacher forcing.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vaelib.data.tokenizer import BOS as BOS_ID
from vaelib.data.tokenizer import EOS as EOS_ID
from vaelib.data.tokenizer import PAD as PAD_ID
from vaelib.model.blocks import DecodeState, LayerCache
from vaelib.model.cc_plan import CCPlan
from vaelib.model.layout import N_PITCH


class IncrementalDecoding:
    """``start`` / ``step`` / ``greedy`` of ``vae.VAE`` (a mixin: it uses the VAE's decoder, memory and inputs)."""

    @torch.no_grad()
    def start(self, z: torch.Tensor, max_len: int | None = None) -> DecodeState:
        """Allocate K/V caches for ``max_len`` positions and project the memory once."""
        c = self.config
        L = min(max_len or c.max_len, c.max_len)
        B, hd = z.shape[0], c.d_model // c.n_heads
        plan = self.plan(z) if c.notes_head else None
        mem = self.memory(z, plan)
        layers = []
        for block in self.decoder:
            mk, mv = block.cross_attn.project_kv(mem)
            shape = (B, c.n_heads, L, hd)
            layers.append(LayerCache(z.new_zeros(shape), z.new_zeros(shape), mk, mv))
        state = DecodeState(pos=0, z_in=self._z_in(z), layers=layers)
        if c.structural or c.plan_input or c.bar_lag or c.cc_copy:  # each reads the elapsed step
            state.elapsed = torch.zeros(B, dtype=torch.long, device=z.device)
        if c.structural:
            state.sounding = z.new_zeros(B, N_PITCH)
        if c.plan_input:
            state.plan_rows = self._plan_rows(plan)
        if c.bar_lag:
            state.lag = self.bar_lag.start(B, z.device)
        if c.cc_copy:
            state.cc_rows = self.cc_plan.bias_rows(self.cc_plan(self.slots(z)))
        if c.cc_cache:
            state.cc_counts = self.cc_cache.start(B, z.device)
        return state

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, state: DecodeState) -> torch.Tensor:
        """tokens (B,) at position ``state.pos`` -> logits (B, V) for position pos+1; advances the state."""
        pos = state.pos
        if pos >= state.layers[0].k.shape[2]:
            raise ValueError(f"decode cache is full at {pos} positions")
        x = F.embedding(tokens[:, None], self.embedding_matrix()) + self.dec_pos.weight[pos]  # (B, 1, d)
        lay = self.layout
        before = state.elapsed
        if state.elapsed is not None:
            state.elapsed = state.elapsed + lay.advance[tokens]
        if state.sounding is not None:
            state.sounding.scatter_add_(1, lay.pitch[tokens].clamp_min(0)[:, None], lay.onoff[tokens].float()[:, None])
            x = x + self._structure_of(state.elapsed, (state.sounding > 0.5).float())[:, None]
        if state.plan_rows is not None:
            x = x + self._plan_at(state.plan_rows, state.elapsed[:, None])
        if state.lag is not None:
            x = x + self.bar_lag.step(state.lag, lay, tokens, before, state.elapsed, self.pitch_table())
        if state.z_in is not None:
            x = x + state.z_in
        x = self.drop(x)
        for block, cache in zip(self.decoder, state.layers):
            x = block.forward_cached(x, cache, pos)
        state.pos = pos + 1
        h = self.dec_ln(x)[:, 0]  # (B, d)
        logits = self._logits(h)  # (B, V)
        bias = None  # as in ``decode``
        if state.cc_rows is not None:
            bias = CCPlan.bias_at(state.cc_rows, state.elapsed[:, None])[:, 0]
        if state.cc_counts is not None:
            cache = self.cc_cache.step(state.cc_counts, tokens, h)
            bias = cache if bias is None else bias + cache
        return logits if bias is None else self._add_cc_bias(logits, bias)

    @torch.no_grad()
    def greedy(self, z: torch.Tensor, max_len: int | None = None, use_cache: bool = True) -> torch.Tensor:
        """Greedy decoding without grammar masks (see ``vaelib.model.generation`` for sampling and masks).

        Returns (B, L) long starting with BOS; rows that emitted EOS are PAD-filled after it."""
        L = min(max_len or self.config.max_len, self.config.max_len)
        B = z.shape[0]
        out = torch.full((B, 1), BOS_ID, dtype=torch.long, device=z.device)
        done = torch.zeros(B, dtype=torch.bool, device=z.device)
        state = self.start(z, L) if use_cache else None
        for _ in range(L - 1):
            logits = self.step(out[:, -1], state) if use_cache else self.decode(z, out)[:, -1]
            nxt = logits.argmax(-1).masked_fill(done, PAD_ID)
            out = torch.cat([out, nxt[:, None]], dim=1)
            done |= nxt == EOS_ID
            if bool(done.all()):
                break
        return out
