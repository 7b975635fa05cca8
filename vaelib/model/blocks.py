"""The Transformer's parts: attention on SDPA, the pre-LN encoder and decoder blocks, the CPU-cheap dropout, and the
per-layer K/V caches of incremental decoding (``DecodeState``). ``vaelib.model.vae`` assembles the β-VAE from them."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from vaelib.config import ModelConfig


class Dropout(nn.Dropout):
    """``nn.Dropout`` with a cheaper mask on the CPU: the keep test reads 16 random bits per element, cut from a
    quarter as many 64-bit draws (the CPU generator costs more than the masking itself). Same distribution up to
    p's rounding to 1/65536; 2.1x faster forward + backward at the ``small`` size on one thread."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.p >= 1:
            return super().forward(x)
        n = x.numel()
        bits = torch.randint(-2 ** 63, 2 ** 63 - 1, ((n + 3) // 4,), dtype=torch.int64).view(torch.int16)[:n]
        keep = bits.view(x.shape) >= round(self.p * 65536) - 32768  # int16 is uniform on [-32768, 32767]
        return x * (keep * (1.0 / (1.0 - self.p))).to(x.dtype)


class Attention(nn.Module):
    """Multi-head attention on ``F.scaled_dot_product_attention`` (flash/memory-efficient kernels where available)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.q = nn.Linear(cfg.d_model, cfg.d_model)
        self.kv = nn.Linear(cfg.d_model, 2 * cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.d_model)
        self.attn_dropout = cfg.attn_dropout

    def split(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape
        return x.view(B, T, self.n_heads, d // self.n_heads).transpose(1, 2)  # (B, H, T, hd)

    def project_kv(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv(src).chunk(2, dim=-1)
        return self.split(k), self.split(v)  # (B, H, S, hd) each

    def attend(self, x, k, v, mask=None, causal=False) -> torch.Tensor:
        q = self.split(self.q(x))  # (B, H, T, hd)
        p = self.attn_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal)
        B, H, T, hd = y.shape
        return self.out(y.transpose(1, 2).reshape(B, T, H * hd))  # (B, T, d)

    def forward(self, x, src=None, mask=None, causal=False) -> torch.Tensor:
        k, v = self.project_kv(x if src is None else src)
        return self.attend(x, k, v, mask=mask, causal=causal)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cfg.d_model, cfg.d_ff), nn.GELU(), nn.Linear(cfg.d_ff, cfg.d_model),
                                 Dropout(cfg.dropout))

    def forward(self, x):
        return self.net(x)


class EncoderBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.d_model), nn.LayerNorm(cfg.d_model)
        self.attn, self.ff = Attention(cfg), FeedForward(cfg)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x, mask):
        x = x + self.drop(self.attn(self.ln1(x), mask=mask))
        return x + self.ff(self.ln2(x))


class DecoderBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1, self.ln2, self.ln3 = (nn.LayerNorm(cfg.d_model) for _ in range(3))
        self.self_attn, self.cross_attn, self.ff = Attention(cfg), Attention(cfg), FeedForward(cfg)
        self.drop = Dropout(cfg.dropout)

    def forward(self, x, memory):
        x = x + self.drop(self.self_attn(self.ln1(x), causal=True))
        x = x + self.drop(self.cross_attn(self.ln2(x), src=memory))
        return x + self.ff(self.ln3(x))

    def forward_cached(self, x, cache: "LayerCache", pos: int):
        """One position (B, 1, d): append this step's K/V to the cache and attend over positions 0..pos."""
        h = self.ln1(x)
        k, v = self.self_attn.project_kv(h)  # (B, H, 1, hd)
        cache.k[:, :, pos:pos + 1] = k
        cache.v[:, :, pos:pos + 1] = v
        x = x + self.drop(self.self_attn.attend(h, cache.k[:, :, :pos + 1], cache.v[:, :, :pos + 1]))
        x = x + self.drop(self.cross_attn.attend(self.ln2(x), cache.mk, cache.mv))
        return x + self.ff(self.ln3(x))


@dataclass
class LayerCache:
    k: torch.Tensor  # (B, H, max_len, hd) self-attention keys, filled up to the current position
    v: torch.Tensor
    mk: torch.Tensor  # (B, H, k, hd) cross-attention keys of the memory, computed once
    mv: torch.Tensor


@dataclass
class DecodeState:
    """Incremental decoding state: the next position to write, z's input offset and the per-layer caches."""
    pos: int
    z_in: torch.Tensor | None  # (B, 1, d) or None
    layers: list[LayerCache]
    elapsed: torch.Tensor | None = None  # (B,) grid steps so far (structural or plan inputs only)
    sounding: torch.Tensor | None = None  # (B, 128) NOTE_ONs minus NOTE_OFFs per pitch so far (structural only)
    plan_rows: torch.Tensor | None = None  # (B, n_steps + 2, d) the normalised plan (plan inputs only)
    cc_rows: torch.Tensor | None = None  # (B, n_steps + 1, n_cc * 128) the CC plan's bias per step (cc_copy only)
    lag: object | None = None  # bar_lag.LagState: the onset and CC grids so far (bar_lag only)
    cc_counts: torch.Tensor | None = None  # (B, n_cc * 128) each CC id's count so far (cc_cache only)

    def keep_rows(self, keep: torch.Tensor) -> None:
        """Keep only the rows ``keep`` (bool (B,) or indices) of z's offset, the structure and every cache."""
        self.z_in = None if self.z_in is None else self.z_in[keep]
        if self.elapsed is not None:
            self.elapsed = self.elapsed[keep]
        if self.sounding is not None:
            self.sounding = self.sounding[keep]
        if self.plan_rows is not None:
            self.plan_rows = self.plan_rows[keep]
        if self.cc_rows is not None:
            self.cc_rows = self.cc_rows[keep]
        if self.lag is not None:
            self.lag.keep_rows(keep)
        if self.cc_counts is not None:
            self.cc_counts = self.cc_counts[keep]
        for c in self.layers:
            c.k, c.v, c.mk, c.mv = c.k[keep], c.v[keep], c.mk[keep], c.mv[keep]
