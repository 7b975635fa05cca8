"""The paper's Transformer β-VAE (§3.2–3.3): pre-LN encoder, masked mean pool -> (μ, log σ²), z -> k memory
tokens, autoregressive decoder that cross-attends to them, and a KV cache for decoding.

Shapes: B batch, T tokens, d ``d_model``, D ``latent_dim``, k ``n_memory``, V vocabulary, H heads.

* ``encode(ids)`` -> μ, log σ² (B, D); PAD (id 0) positions are masked out of attention and of the pool.
* ``decode(z, ids_in)`` -> logits (B, T, V), teacher forced and causal.
* ``forward(ids)`` -> dict(logits, targets, mu, logvar, z); logits predict ``ids[:, 1:]`` from ``ids[:, :-1]``.
* ``start(z)`` / ``step(tokens, state)``: incremental decoding with per-layer K/V caches (O(T) per token, not O(T²)).

Why k memory tokens: with a single memory token cross-attention is degenerate (its softmax weight is always 1,
so the block reduces to a learned linear map of z); k=4 (one per bar) lets each position choose what to read.
``n_memory=1`` reproduces the paper literally. ``z_to_input`` also adds a projection of z to every decoder input
embedding (Optimus, Li et al. 2020), which gives the decoder a second, harder-to-ignore path to z.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vaelib.config import ModelConfig
from vaelib.data.tokenizer import BOS as BOS_ID  # noqa: F401 (public here: the ids of the model's stream)
from vaelib.data.tokenizer import EOS as EOS_ID  # noqa: F401
from vaelib.data.tokenizer import PAD as PAD_ID
from vaelib.model.bar_lag import BarLag
from vaelib.model.blocks import Attention, DecoderBlock, Dropout, EncoderBlock
from vaelib.model.cc_cache import CCCache
from vaelib.model.cc_plan import CCPlan
from vaelib.model.incremental import IncrementalDecoding
from vaelib.model.latent_slots import SlotLayout
from vaelib.model.layout import N_PITCH, Layout


class VAE(IncrementalDecoding, SlotLayout, nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        c = self.config = config
        if c.d_model % c.n_heads:
            raise ValueError(f"d_model={c.d_model} must be divisible by n_heads={c.n_heads}")
        if c.embedding not in ("plain", "factorised"):
            raise ValueError(f"embedding must be 'plain' or 'factorised', got {c.embedding!r}")
        self.layout = Layout(c)
        if c.embedding == "plain":
            self.tok = nn.Embedding(c.vocab_size, c.d_model)  # shared by encoder, decoder and (tied) output head
        else:
            self.kind_emb = nn.Embedding(self.layout.n_kinds, c.d_model)
            self.value_emb = nn.Embedding(self.layout.n_values, c.d_model)
        if c.cc_lane_values and c.embedding != "factorised":
            raise ValueError("cc_lane_values needs embedding='factorised'")
        # cc_lane_values: each CC lane's gate on the decoder state for scoring values (0: the shared value scores)
        self.cc_value_gate = nn.Parameter(torch.zeros(self.layout.n_cc, c.d_model)) if c.cc_lane_values else None
        if c.structural:
            self.bar_emb = nn.Embedding(c.n_bars + 1, c.d_model)  # bar n_bars = the window's end
            self.step_emb = nn.Embedding(c.steps_per_bar, c.d_model)
        if (c.plan_memory or c.plan_input) and not c.notes_head:
            raise ValueError("plan_memory and plan_input need notes_head")
        if c.pool not in ("mean", "attention", "grid", "beat"):
            raise ValueError(f"pool must be 'mean', 'attention', 'grid' or 'beat', got {c.pool!r}")
        self._slot_layout(c)
        if c.notes_head:
            n_steps = c.steps_per_bar * c.n_bars
            # z -> a small code per grid step -> d_model. Each step its own linear read-out of z; with beat slots, of
            # its slot, by one read-out that every slot shares
            if c.pool == "beat":
                self.notes_in = nn.Linear(self.slot_dim, self.slot_steps * c.notes_slot_dim)
            else:
                self.notes_in = nn.Linear(c.latent_dim, n_steps * c.notes_slot_dim)
            self.notes_up = nn.Sequential(nn.Linear(c.notes_slot_dim, c.d_model), nn.LayerNorm(c.d_model))
            self.notes_pos = nn.Parameter(torch.zeros(n_steps, c.d_model))
            self.notes_mlp = nn.Sequential(nn.LayerNorm(c.d_model), nn.Linear(c.d_model, 2 * c.d_model), nn.GELU(),
                                           nn.Linear(2 * c.d_model, c.d_model))
            self.notes_out = nn.Sequential(nn.LayerNorm(c.d_model), nn.Linear(c.d_model, N_PITCH + 1))
        if c.cc_head:
            if not c.notes_head:
                raise ValueError("cc_head needs notes_head")
            self.notes_cc_out = nn.Sequential(nn.LayerNorm(c.d_model), nn.Linear(c.d_model, self.layout.n_cc * 128))
        if c.cc_plan and c.cc_head:
            raise ValueError("cc_plan replaces cc_head: choose one")
        if c.cc_copy and not c.cc_plan:
            raise ValueError("cc_copy needs cc_plan")
        if c.cc_pool and c.pool != "beat":
            raise ValueError("cc_pool needs pool='beat'")
        beat = c.pool == "beat"
        if c.cc_plan_bar and not (c.cc_plan and beat and self.n_slots % c.n_bars == 0):
            raise ValueError("cc_plan_bar needs cc_plan and pool='beat' with whole bars per slot group")
        n_read = (c.n_bars if c.cc_plan_bar else self.n_slots) if beat else 1
        self.cc_plan = (CCPlan(c, n_read, self.slot_dim * self.n_slots // n_read if beat else self.slot_dim,
                               self.layout.n_cc) if c.cc_plan else None)
        if c.plan_input:
            self.plan_ln = nn.LayerNorm(c.d_model)
            # the plan at the next event's step and at the step after it, normalised to the token embeddings' scale
            self.plan_in = nn.Sequential(nn.Linear(2 * c.d_model, c.d_model), nn.LayerNorm(c.d_model))
        self.bar_lag = (BarLag(c.d_model, self.layout.n_cc, c.steps_per_bar, c.steps_per_bar * c.n_bars)
                        if c.bar_lag else None)
        if c.cc_cache_gate and not c.cc_cache:
            raise ValueError("cc_cache_gate needs cc_cache")
        self.cc_cache = (CCCache(self.layout.n_cc, self.layout.cc0, d_model=c.d_model if c.cc_cache_gate else 0)
                         if c.cc_cache else None)
        self.enc_pos = nn.Embedding(c.max_len, c.d_model)
        self.dec_pos = nn.Embedding(c.max_len, c.d_model)
        self.drop = Dropout(c.dropout)
        self.encoder = nn.ModuleList(EncoderBlock(c) for _ in range(c.n_enc_layers))
        self.enc_ln = nn.LayerNorm(c.d_model)
        pooled_dim, z_dim = c.d_model, c.latent_dim
        if c.pool == "grid":
            n_slots = c.steps_per_bar * c.n_bars + 1  # one per grid step, and the window's end
            self.pool_slot = nn.Linear(c.d_model, c.grid_slot_dim)
            pooled_dim = c.d_model + n_slots * c.grid_slot_dim
        if c.pool == "beat":
            self.pool_slot = nn.Linear(c.d_model, c.grid_slot_dim)
            self.onset_emb = nn.Embedding(N_PITCH + 1, c.grid_slot_dim)  # per step: no onset, or its lowest pitch
            # per slot: its tokens' mean state, the window's mean state and its steps' NOTE_ON states
            pooled_dim, z_dim = 2 * c.d_model + self.slot_steps * c.grid_slot_dim, c.latent_dim // self.n_slots
            if c.cc_pool:
                pooled_dim += self.slot_steps * 2 * self.layout.n_cc  # per step and lane: value, and whether set
        if c.pool == "attention":
            self.pool_queries = nn.Parameter(torch.zeros(c.n_pool, c.d_model))
            self.pool_attn = Attention(c)
            self.pool_ln = nn.LayerNorm(c.d_model)
            self.pool_slot = nn.Linear(c.d_model, c.d_model // 4)  # each slot's share of the pooled vector
            pooled_dim = c.n_pool * (c.d_model // 4)
        if c.bar_pattern:  # each beat's variation from its own features, each pattern from its beat's in every bar
            z_dim = self.own_dim
            self.to_mu_pattern = nn.Linear(pooled_dim, self.pattern_dim)
            self.to_logvar_pattern = nn.Linear(pooled_dim, self.pattern_dim)
        if c.bar_share:  # each beat's code from its own features, each bar's code from its 4 beats' mean features
            z_dim = self.beat_dim
            self.to_mu_bar = nn.Linear(pooled_dim, self.bar_dim)
            self.to_logvar_bar = nn.Linear(pooled_dim, self.bar_dim)
        self.to_mu = nn.Linear(pooled_dim, z_dim)  # with beat slots, one head that every slot shares
        self.to_logvar = nn.Linear(pooled_dim, z_dim)
        self.to_memory = nn.Linear(c.latent_dim, c.n_memory * c.d_model)
        self.memory_pos = nn.Parameter(torch.zeros(c.n_memory, c.d_model))
        self.memory_ln = nn.LayerNorm(c.d_model)  # bounds the memory's scale (x-transformers' norm_context)
        self.to_input = nn.Linear(c.latent_dim, c.d_model) if c.z_to_input else None
        self.decoder = nn.ModuleList(DecoderBlock(c) for _ in range(c.n_dec_layers))
        self.dec_ln = nn.LayerNorm(c.d_model)
        if c.embedding == "plain":
            self.head = nn.Linear(c.d_model, c.vocab_size, bias=False)
            self.head.weight = self.tok.weight  # weight tying (Press & Wolf 2017), as in nanoGPT
        self.apply(self._init)
        if c.notes_head:
            nn.init.normal_(self.notes_pos, std=0.02)
            # z's read-out keeps PyTorch's fan-in init: at std 0.02 the chain z -> step code -> d_model shrinks z's
            # signal ~50x under the position table, and the head learns the onset marginals long before it reads z
            self.notes_in.reset_parameters()
            self.notes_up[0].reset_parameters()
        if self.cc_plan is not None:
            self.cc_plan.reset_parameters()
        if self.bar_lag is not None:
            self.bar_lag.reset_parameters()
        if self.cc_cache is not None:
            self.cc_cache.reset_parameters()
        if c.plan_input:
            # the input's gain starts at the embedding tables' 0.02: at LayerNorm's 1 the plan would drown the token
            # and structural inputs it is added to (the decoder then trained to a CE of 4.9 nats in the pilot)
            nn.init.constant_(self.plan_in[1].weight, 0.02)
        if c.pool == "beat":
            nn.init.normal_(self.onset_emb.weight, std=1.0)  # on the scale of the LayerNormed states beside it
        if c.pool == "attention":
            nn.init.normal_(self.pool_queries, std=1.0)  # distinct queries from the start (keys are LayerNormed)
        if self.to_input is not None:
            # z's input path starts at zero. Even so, Adam grows W z (fan-in latent_dim) far faster than the
            # 0.02-scale token embeddings it is added to; the pre-LN input then carries little but a per-sequence
            # constant and training stalls at the unigram loss (docs/experiments.md). Hence ModelConfig.z_to_input
            # defaults to False.
            nn.init.zeros_(self.to_input.weight)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ------------------------------------------------------------------ embedding and structure
    def embedding_matrix(self) -> torch.Tensor:
        """(V, d): the input row of every id, which is also the tied output head."""
        if self.config.embedding == "plain":
            return self.tok.weight
        return self.kind_emb.weight[self.layout.kind] + self.value_emb.weight[self.layout.value]

    def pitch_table(self) -> torch.Tensor:
        """(128, d) the pitch embedding: the shared value rows (factorised) or the NOTE_ON rows (plain)."""
        if self.config.embedding == "plain":
            return self.tok.weight[self.layout.on0:self.layout.off0]
        r = self.layout.pitch_row0
        return self.value_emb.weight[r:r + N_PITCH]

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        if self.config.embedding == "plain":
            return self.head(h)
        logits = F.linear(h, self.embedding_matrix().to(h.dtype))
        if self.cc_value_gate is None:
            return logits
        # (h * g_l) . value_v = h . (g_l * value_v) for every lane l and value v: what each lane's own gate adds to
        # the shared value score, as one (n_cc * 128, d) matrix in the vocabulary's CC order (lane-major)
        r = self.layout.ccv_row0
        values = self.value_emb.weight[r:r + 128]  # (128, d) the CC value rows every lane shares
        gated = (self.cc_value_gate[:, None, :] * values[None]).flatten(0, 1)  # (n_cc * 128, d)
        return self._add_cc_bias(logits, F.linear(h, gated.to(h.dtype)))

    def _structure_of(self, elapsed: torch.Tensor, sounding: torch.Tensor) -> torch.Tensor:
        """elapsed (...,) steps, sounding (..., 128) 0/1 -> (..., d) the structural input."""
        c = self.config
        bar = torch.div(elapsed, c.steps_per_bar, rounding_mode="floor").clamp(max=c.n_bars)
        return (self.bar_emb(bar) + self.step_emb(elapsed % c.steps_per_bar)
                + sounding.to(self.pitch_table().dtype) @ self.pitch_table())

    def structure(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, T) -> (B, T, d): where each position is in the bar and which pitches sound after its token."""
        return self._structure_of(self.layout.elapsed(ids), self.layout.sounding(ids))

    def plan(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, D) -> (B, n_steps, d): the notes head's hidden state per grid step."""
        B, S = z.shape[0], self.notes_pos.shape[0]
        code = self.notes_in(self.slots(z) if self.config.pool == "beat" else z)
        h = self.notes_up(code.reshape(B, S, -1)) + self.notes_pos  # (B, S, d)
        return h + self.notes_mlp(h)

    def cc_logits(self, plan: torch.Tensor) -> torch.Tensor:
        """plan (B, n_steps, d) -> (B, n_steps, n_cc, 128) logits of each lane's value at each step."""
        B, S, _ = plan.shape
        return self.notes_cc_out(plan).view(B, S, self.layout.n_cc, 128)

    def notes_logits(self, z: torch.Tensor, plan: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, D) -> (B, n_steps, 129) logits of the notes head: per grid step, no onset (0) or pitch p (1 + p)."""
        return self.notes_out(self.plan(z) if plan is None else plan)

    # ------------------------------------------------------------------ encoder
    def encode(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """ids (B, T) long, PAD-padded -> μ, log σ² (B, D); log σ² clamped to [logvar_min, logvar_max]."""
        B, T = ids.shape
        keep = ids != PAD_ID  # (B, T)
        x = F.embedding(ids, self.embedding_matrix()) + self.enc_pos(torch.arange(T, device=ids.device))
        if self.config.structural:
            x = x + self.structure(ids)
        x = self.drop(x)  # (B, T, d)
        mask = keep[:, None, None, :]  # (B, 1, 1, T): attend to real tokens only
        for block in self.encoder:
            x = block(x, mask)
        # the pool and the latent heads run in fp32 even under bf16 autocast: the clamp and the KL need it
        with torch.autocast(ids.device.type, enabled=False):
            x = self.enc_ln(x.float())
            if self.config.pool == "attention":
                q = self.pool_queries.expand(B, -1, -1)  # (B, n_pool, d)
                slots = self.pool_ln(self.pool_attn(q, src=x, mask=mask))  # PAD keys masked out
                pooled = self.pool_slot(slots).flatten(1)  # (B, n_pool * d / 4)
            elif self.config.pool == "beat":
                pooled = self._beat_pool(ids, x, keep)  # (B, n_slots, pooled_dim)
            else:
                w = keep.unsqueeze(-1).float()  # masked mean pool: PAD never dilutes the context vector
                pooled = (x * w).sum(1) / w.sum(1).clamp_min(1.0)  # (B, d)
                if self.config.pool == "grid":
                    pooled = torch.cat([pooled, self._grid_pool(ids, x, keep)], 1)
            mu = self.to_mu(pooled).flatten(1)  # beat slots: (B, n_slots, D / n_slots) -> (B, D)
            logvar = self.to_logvar(pooled).flatten(1)
            if self.config.bar_pattern:  # (B, 4 beats, pooled) each beat position's features averaged over the bars
                per_beat = pooled.view(B, self.config.n_bars, 4, -1).mean(1)
                mu = torch.cat([self.to_mu_pattern(per_beat).flatten(1), mu], 1)
                logvar = torch.cat([self.to_logvar_pattern(per_beat).flatten(1), logvar], 1)
            if self.config.bar_share:  # (B, bars, pooled) each bar's beats' features averaged, then z bar by bar
                nb = self.config.n_bars
                per_bar = pooled.view(B, nb, 4, -1).mean(2)
                mu = torch.cat([self.to_mu_bar(per_bar), mu.view(B, nb, -1)], -1).flatten(1)
                logvar = torch.cat([self.to_logvar_bar(per_bar), logvar.view(B, nb, -1)], -1).flatten(1)
            logvar = logvar.clamp(self.config.logvar_min, self.config.logvar_max)
        return mu, logvar

    @staticmethod
    def reparameterize(mu, logvar, generator: torch.Generator | None = None) -> torch.Tensor:
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    # ------------------------------------------------------------------ decoder
    def memory(self, z: torch.Tensor, plan: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, D) -> k memory tokens (B, k, d) for cross-attention (k + n_steps with ``plan_memory``; ``plan``
        is ``self.plan(z)`` when the caller already has it)."""
        B = z.shape[0]
        mem = self.to_memory(z).view(B, self.config.n_memory, self.config.d_model) + self.memory_pos
        if self.config.plan_memory:
            mem = torch.cat([mem, self.plan(z) if plan is None else plan], 1)  # (B, k + n_steps, d)
        return self.memory_ln(mem)

    def _plan_rows(self, plan: torch.Tensor) -> torch.Tensor:
        """plan (B, S, d) -> (B, S + 2, d): normalised, with two zero rows for the steps past the window's end."""
        p = self.plan_ln(plan)
        return torch.cat([p, p.new_zeros(p.shape[0], 2, p.shape[2])], 1)

    def _plan_at(self, rows: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        """rows (B, S + 2, d), elapsed (B, T) -> (B, T, d): the plan input at the elapsed step and the next one."""
        B, T = elapsed.shape
        e = elapsed.clamp(max=rows.shape[1] - 2)
        d = rows.shape[2]
        here = rows.gather(1, e[..., None].expand(B, T, d))
        after = rows.gather(1, (e + 1)[..., None].expand(B, T, d))
        return self.plan_in(torch.cat([here, after], -1))

    def extra_inputs(self, ids_in: torch.Tensor, plan: torch.Tensor | None) -> torch.Tensor | None:
        """(B, T, d) what the decoder adds to its token inputs beyond position and z: the structural inputs, the
        plan at the elapsed step and what the window held a bar earlier (each computed from the tokens up to each
        position), or None."""
        c = self.config
        extra = self.structure(ids_in) if c.structural else None
        if c.plan_input:
            p = self._plan_at(self._plan_rows(plan), self.layout.elapsed(ids_in))
            extra = p if extra is None else extra + p
        if c.bar_lag:
            lag = self.bar_lag(self.layout, ids_in, self.pitch_table())
            extra = lag if extra is None else extra + lag
        return extra

    def _z_in(self, z: torch.Tensor) -> torch.Tensor | None:
        return self.to_input(z).unsqueeze(1) if self.to_input is not None else None  # (B, 1, d)

    def decode(self, z: torch.Tensor, ids_in: torch.Tensor, structure: torch.Tensor | None = None,
               plan: torch.Tensor | None = None, elapsed: torch.Tensor | None = None,
               cc_log_probs: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, D), ids_in (B, T) starting with BOS -> logits (B, T, V); position t predicts token t+1.

        ``structure`` (B, T, d) overrides ``extra_inputs(ids_in, plan)`` (training computes them from the ids before
        word dropout; ``elapsed`` (B, T), the steps elapsed after each input token, likewise, for the CC plan's bias;
        ``cc_log_probs`` is ``self.cc_plan(self.slots(z))`` when the caller has it). Causal attention alone is enough
        for padding: PAD only follows real
        tokens, so no real position can see one, and PAD positions are excluded from the loss."""
        B, T = ids_in.shape
        if T > self.config.max_len:
            raise ValueError(f"sequence of {T} tokens exceeds max_len={self.config.max_len}")
        x = F.embedding(ids_in, self.embedding_matrix()) + self.dec_pos(torch.arange(T, device=ids_in.device))
        if plan is None and self.config.notes_head:
            plan = self.plan(z)
        if structure is None:
            structure = self.extra_inputs(ids_in, plan)
        if structure is not None:
            x = x + structure
        z_in = self._z_in(z)
        if z_in is not None:
            x = x + z_in
        x = self.drop(x)
        mem = self.memory(z, plan)
        for block in self.decoder:
            x = block(x, mem)
        h = self.dec_ln(x)
        logits = self._logits(h)  # (B, T, V)
        bias = None  # on the CC ids: the CC plan's (at the elapsed step) and the CC cache's, added in one pass
        if self.config.cc_copy:
            rows = self.cc_plan.bias_rows(self.cc_plan(self.slots(z)) if cc_log_probs is None else cc_log_probs)
            bias = CCPlan.bias_at(rows, self.layout.elapsed(ids_in) if elapsed is None else elapsed)
        if self.cc_cache is not None:
            cache = self.cc_cache(ids_in, h)
            bias = cache if bias is None else bias + cache
        return logits if bias is None else self._add_cc_bias(logits, bias)

    def _add_cc_bias(self, logits: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """logits (..., V) + a bias (..., n_cc * 128) on the CC ids (the CC plan's, the CC cache's)."""
        c0 = self.layout.cc0
        return torch.cat([logits[..., :c0], logits[..., c0:] + bias.to(logits.dtype)], -1)

    def forward(self, ids: torch.Tensor, word_dropout: float = 0.0, sample: bool = True,
                generator: torch.Generator | None = None, cc_word_dropout: float | None = None) -> dict:
        """ids (B, T) = BOS ... EOS PAD* -> dict(logits (B, T-1, V), targets (B, T-1), mu, logvar, z (B, D)).

        ``word_dropout`` replaces that fraction of the decoder's real input tokens (not BOS) by PAD, so the
        decoder cannot reconstruct from its own history alone and must read z (Bowman et al. 2016). The
        structural inputs are computed from the true tokens and zeroed wherever a token is dropped: otherwise
        they would hand the decoder the dropped token's effect (its time shift, its note) without z.
        ``cc_word_dropout`` (None: ``word_dropout``) is the rate for CC tokens, so the decoder can be made to take the
        lanes' values from z's plan more often than it re-reads them from its own history.

        With the notes head the dict also holds ``notes_logits`` (B, n_steps, 129) and ``notes_targets``
        (B, n_steps); with the CC head ``cc_logits`` (B, n_steps, n_cc, 128) and ``cc_targets`` (B, n_steps, n_cc)."""
        c = self.config
        mu, logvar = self.encode(ids)
        z = self.reparameterize(mu, logvar, generator) if sample else mu
        ids_in, targets = ids[:, :-1], ids[:, 1:]
        plan = self.plan(z) if c.notes_head else None  # one pass serves the decoder and the notes head
        structure = self.extra_inputs(ids_in, plan)
        elapsed = self.layout.elapsed(ids_in) if c.cc_copy else None  # from the true tokens, as the structure
        cc_lp = self.cc_plan(self.slots(z)) if c.cc_plan else None  # one pass serves the bias and the plan's loss
        cc_rate = word_dropout if cc_word_dropout is None else cc_word_dropout
        if (word_dropout > 0 or cc_rate > 0) and self.training:
            rate = torch.where(self.layout.kind[ids_in] >= 7, cc_rate, word_dropout)  # kinds 7.. are the CC lanes
            drop = torch.rand(ids_in.shape, device=ids.device, generator=generator) < rate
            drop[:, 0] = False
            ids_in = ids_in.masked_fill(drop, PAD_ID)
            if structure is not None:
                structure = structure.masked_fill(drop[..., None], 0.0)
        out = {"logits": self.decode(z, ids_in, structure, plan, elapsed, cc_lp), "targets": targets, "mu": mu,
               "logvar": logvar, "z": z}
        if c.notes_head:
            out["notes_logits"] = self.notes_logits(z, plan)
            out["notes_targets"] = self.layout.onset_targets(ids, c.steps_per_bar * c.n_bars)
        if c.cc_head or c.cc_plan:
            out["cc_logits"] = self.cc_logits(plan) if c.cc_head else cc_lp  # the plan's are log-probabilities
            out["cc_targets"] = self.layout.cc_targets(ids, c.steps_per_bar * c.n_bars)
        return out
