"""The β-VAE objective (negative ELBO) with its normalisation, free bits, and per-token-type logging.

Normalisation (stated once, used everywhere):
  * reconstruction CE is **summed over the real (non-PAD) target tokens of a sequence**, in nats;
  * KL(q(z|x) || N(0, I)) is **summed over the latent dimensions** of a sequence, in nats;
  * both are then **averaged over the sequences of the batch**.
So ``loss = E_x[ CE(x) + β · KL(x) ]`` is the per-sequence negative ELBO at β = 1; per-token figures
(``ce_per_token``) are reported separately for comparison across lengths.

Free bits (Kingma et al. 2016, per dimension; MusicVAE's ``free_bits``): the penalised KL is
``Σ_j max(λ, E_batch[KL_j])``: a dimension whose batch-mean KL is under λ nats costs a constant λ and gets no
gradient, so the optimizer cannot push it further into collapse. ``kl`` always reports the true KL.

Options of the recommended objective (both off in the paper's):
  * ``notes_weight`` w adds w · CE of the notes head (the window's onsets, per grid step, predicted from z alone;
    summed over steps, nats per sequence), so z must carry the notes;
  * ``cc_weight`` adds w_cc · CE of the CC head or the CC plan (every lane's value at every grid step, predicted from
    z alone; the plan hands in log-probabilities, on which the CE is the same NLL), so z must carry the automation;
  * ``cc_hold_weight`` α weights each CC token's CE by its share of the curve it draws: token weight
    a + α · hold / mean hold (the steps its value holds, over their mean among the batch's CC tokens; a is
    ``cc_hold_base``), so a lane value that holds for a bar counts for more than one that holds for a step, as it
    does in the curves CC-ME compares. The reported ``ce`` stays unweighted;
  * ``per_token`` divides the whole loss by the batch's mean real tokens per sequence: the same objective on a
    scale whose gradient norm is O(1), so gradient clipping acts on outliers instead of on every step.

CE and KL are computed in fp32 even when the model ran under bf16 autocast.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vaelib.data.tokenizer import PAD as PAD_ID
from vaelib.data.tokenizer import TYPE_NAMES  # noqa: F401 (per-type logging names, public here)


def kl_per_dim(mu, logvar):
    """KL(N(μ, σ²) || N(0, 1)) per sequence and dimension, (B, D) nats: fp32 tensors, or numpy arrays in their
    own dtype. The one home of this formula (training, diagnostics, evaluation and latent analysis call it)."""
    if isinstance(mu, np.ndarray):  # analysis on stored posteriors (evaluation), same formula in numpy
        return 0.5 * (mu ** 2 + np.exp(logvar) - 1.0 - logvar)
    mu, logvar = mu.float(), logvar.float()
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def token_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-token cross-entropy (B, T) nats, fp32; 0 at PAD targets. logits (B, T, V), targets (B, T) long."""
    B, T, V = logits.shape
    ce = F.cross_entropy(logits.float().reshape(B * T, V), targets.reshape(B * T), ignore_index=PAD_ID,
                         reduction="none")
    return ce.view(B, T)


def elbo(logits: torch.Tensor, targets: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float,
         free_bits: float = 0.0, with_accuracy: bool = True, notes_logits: torch.Tensor | None = None,
         notes_targets: torch.Tensor | None = None, notes_weight: float = 0.0, per_token: bool = False,
         cc_logits: torch.Tensor | None = None, cc_targets: torch.Tensor | None = None, cc_weight: float = 0.0,
         cc_hold: torch.Tensor | None = None, cc_hold_weight: float = 0.0, cc_hold_base: float = 1.0) -> dict:
    """Negative ELBO for one batch.

    logits (B, T, V), targets (B, T) long with PAD=0 ignored, mu/logvar (B, D); ``beta`` the KL weight,
    ``free_bits`` λ in nats per dimension (0 = off); ``cc_hold`` (B, T) the steps each target CC token's value holds
    (``Layout.cc_hold``, 0 elsewhere; a token overwritten at its own step holds 0 and counts 1), used with
    ``cc_hold_weight`` and ``cc_hold_base``. Returns a dict of fp32 tensors:
      loss          scalar, CE (hold-weighted with ``cc_hold_weight``) + β·KL_penalised (+ w·notes + w_cc·cc), per
                    sequence, mean over batch (what is optimised; divided by the mean tokens per sequence when
                    ``per_token``)
      notes         scalar, the notes head's CE summed over grid steps, mean over sequences (with ``notes_logits``)
      cc            scalar, the CC head's CE summed over grid steps and lanes, mean over sequences (with ``cc_logits``;
                    steps before a lane's first value are left out)
      ce            scalar, reconstruction CE summed over tokens, mean over sequences (nats/sequence)
      kl            scalar, true KL summed over dims, mean over sequences (nats/sequence)
      kl_penalised  scalar, Σ_j max(λ, mean_b KL_bj) (= kl when λ = 0)
      kl_per_dim    (D,), batch-mean KL per dimension
      ce_per_token  scalar, CE per real target token (nats/token)
      accuracy      scalar, argmax accuracy over real target tokens (only ``with_accuracy``: the argmax over the
                    vocabulary costs ~2 % of a ``small`` training step on the CPU)
      n_tokens      scalar, real target tokens in the batch
    """
    mask = targets != PAD_ID  # (B, T)
    ce_tok = token_ce(logits, targets)  # (B, T)
    ce_seq = ce_tok.sum(1)  # (B,)
    n_tokens = mask.sum()
    kl_bd = kl_per_dim(mu, logvar)  # (B, D)
    kl_d = kl_bd.mean(0)  # (D,)
    kl = kl_bd.sum(1).mean()
    kl_pen = kl_d.clamp_min(free_bits).sum() if free_bits > 0 else kl
    ce = ce_seq.mean()
    fit_ce = ce
    if cc_hold is not None and cc_hold_weight:
        is_cc = (cc_hold > 0) & mask
        mean_hold = cc_hold[is_cc].mean() if bool(is_cc.any()) else cc_hold.new_ones(())
        w = torch.where(is_cc, cc_hold_base + cc_hold_weight * cc_hold / mean_hold, 1.0)
        fit_ce = (ce_tok * w).sum(1).mean()
    loss = fit_ce + beta * kl_pen
    extra = {}
    if notes_logits is not None:
        S, C = notes_logits.shape[1:]
        notes = F.cross_entropy(notes_logits.float().reshape(-1, C), notes_targets.reshape(-1),
                                reduction="sum") / notes_logits.shape[0]
        extra["notes"] = notes
        if notes_weight:
            loss = loss + notes_weight * notes
    if cc_logits is not None:
        cc = F.cross_entropy(cc_logits.float().reshape(-1, cc_logits.shape[-1]), cc_targets.reshape(-1),
                             ignore_index=-1, reduction="sum") / cc_logits.shape[0]
        extra["cc"] = cc
        if cc_weight:
            loss = loss + cc_weight * cc
    if per_token:
        loss = loss / (n_tokens / mask.shape[0]).clamp_min(1)
    out = {"loss": loss, **extra, "ce": ce, "kl": kl, "kl_penalised": kl_pen, "kl_per_dim": kl_d.detach(),
           "n_tokens": n_tokens}
    with torch.no_grad():
        out["ce_per_token"] = ce_tok.sum() / n_tokens.clamp_min(1)
        if with_accuracy:
            out["accuracy"] = ((logits.argmax(-1) == targets) & mask).sum().float() / n_tokens.clamp_min(1)
    return out


@torch.no_grad()
def ce_by_type(logits: torch.Tensor, targets: torch.Tensor, type_of: torch.Tensor) -> dict[str, float]:
    """Mean CE per real target token, split by the target's token type.

    ``type_of`` (V,) long maps id -> type code (``Tokenizer.token_types(np.arange(V))``: 1 velocity, 2 note_on,
    3 note_off, 4 time_shift, 5 cc; 0 special, i.e. EOS here). Types absent from the batch are left out.
    """
    ce_tok = token_ce(logits, targets)  # (B, T)
    types = type_of.to(targets.device)[targets]  # (B, T)
    mask = targets != PAD_ID
    out = {}
    for code, name in enumerate(TYPE_NAMES):
        sel = mask & (types == code)
        n = int(sel.sum())
        if n:
            out[name] = float(ce_tok[sel].sum() / n)
    return out
