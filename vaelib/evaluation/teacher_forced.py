"""Teacher-forced scoring of a run on a split: CE per token (with z = mu(x) and with another window's mu), CE by
token type split into "which event" and "which value", and what z carries (note-start and pitch accuracy with the
window's own z against another's). ``evaluate.evaluate_run`` reports it; definitions in ``evaluate``'s docstring.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vaelib.data.batching import pad_batch
from vaelib.data.tokenizer import PAD, TYPE_NAMES
from vaelib.model.objective import token_ce


def event_kinds(tokenizer) -> torch.Tensor:
    """(V,) long "which event" of every id: its token type (0 special .. 4 time_shift), each CC lane its own kind
    (5 + lane). The rest of a token, given its kind, is "which value"."""
    ids = np.arange(tokenizer.vocab_size)
    kind = tokenizer.token_types(ids).astype(np.int64)
    cc = ids >= tokenizer.cc0
    kind[cc] = 5 + (ids[cc] - tokenizer.cc0) // 128
    return torch.as_tensor(kind)


def _what_logits_know(logits, tgt, kind_of, type_of, on0: int, off0: int) -> dict:
    """Per-example sums from teacher-forced logits (B, T, V): ``ce_event`` (B, 6) nats of "which event" by target
    type (the rest of the CE is "which value"); ``start_hit``/``start_n``: at targets that open a note (VELOCITY),
    is "note start" the likeliest event; ``pitch_hit``/``pitch_n``: at NOTE_ON targets, is the argmax NOTE_ON pitch
    right."""
    logp = torch.log_softmax(logits.float(), -1)  # (B, T, V)
    K = int(kind_of.max()) + 1
    onehot = F.one_hot(kind_of, K).to(logp.dtype)  # (V, K)
    p_kind = logp.exp() @ onehot  # (B, T, K)
    mask = tgt != PAD
    tk_kind = kind_of[tgt]  # (B, T)
    ce_event = -torch.log(p_kind.gather(-1, tk_kind[..., None]).squeeze(-1).clamp_min(1e-30)) * mask
    types = type_of[tgt]
    onehot_t = F.one_hot(types, len(TYPE_NAMES)) * mask[..., None]
    start = mask & (types == 1)
    start_hit = start & (p_kind.argmax(-1) == 1)
    on = mask & (types == 2)
    pitch_hit = on & (logp[..., on0:off0].argmax(-1) == (tgt - on0))
    return {"ce_event": (ce_event[..., None] * onehot_t).sum(1), "start_hit": start_hit.sum(1),
            "start_n": start.sum(1), "pitch_hit": pitch_hit.sum(1), "pitch_n": on.sum(1)}


def _token_ce(model, z, inp, tgt) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher-forced logits (B, T, V) and per-token CE (B, T) in nats (0 at PAD targets) from z (B, D)."""
    logits = model.decode(z, inp).float()
    return logits, token_ce(logits, tgt)  # flat (B*T, V): 3x faster than cross_entropy on logits.transpose(1, 2)


@torch.no_grad()
def teacher_forced(model, seqs: list[np.ndarray], tokenizer, partner: np.ndarray, seed: int = 0,
                   batch_size: int = 16) -> dict:
    """Per-example teacher-forced quantities: (N,) arrays ce_mu, ce_partner, ce_sampled, ce_prior (z from
    q(z|x) and from N(0, I); nats summed over target tokens), n_tokens, correct; (N, 6) ce_type/n_type per token
    type; mu, logvar (N, D)."""

    dev = next(model.parameters()).device
    mus, logvars = [], []
    for i in range(0, len(seqs), batch_size):
        mu, lv = model.encode(pad_batch(seqs[i:i + batch_size]).to(dev))
        mus.append(mu.float().cpu())
        logvars.append(lv.float().cpu())
    mu_all, lv_all = torch.cat(mus), torch.cat(logvars)  # (N, D)
    type_of = torch.as_tensor(tokenizer.token_types(np.arange(tokenizer.vocab_size)), dtype=torch.long).to(dev)
    kind_of = event_kinds(tokenizer).to(dev)
    know = lambda lg, tgt: _what_logits_know(lg, tgt, kind_of, type_of, tokenizer.on0, tokenizer.off0)  # noqa: E731
    gen, gen_prior = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    out = {k: [] for k in ("ce_mu", "ce_partner", "ce_sampled", "ce_prior", "n_tokens", "correct", "ce_type",
                           "n_type", "ce_type_partner")}
    for who in ("mu", "partner"):
        for k in ("ce_event", "start_hit", "start_n", "pitch_hit", "pitch_n"):
            out[f"{k}_{who}"] = []
    for i in range(0, len(seqs), batch_size):
        ids = pad_batch(seqs[i:i + batch_size]).to(dev)  # (B, T)
        inp, tgt = ids[:, :-1], ids[:, 1:]
        mask = tgt != PAD
        mu, lv = mu_all[i:i + len(ids)], lv_all[i:i + len(ids)]
        z_s = mu + torch.randn(mu.shape, generator=gen) * (0.5 * lv).exp()
        logits, ce = _token_ce(model, mu.to(dev), inp, tgt)
        out["ce_mu"].append(ce.sum(1).cpu())
        logits_p, ce_p = _token_ce(model, mu_all[partner[i:i + len(ids)]].to(dev), inp, tgt)
        out["ce_partner"].append(ce_p.sum(1).cpu())
        for who, lg in (("mu", logits), ("partner", logits_p)):
            for k, v in know(lg, tgt).items():
                out[f"{k}_{who}"].append(v.cpu())
        del logits_p
        out["ce_sampled"].append(_token_ce(model, z_s.to(dev), inp, tgt)[1].sum(1).cpu())
        z_p = torch.randn(mu.shape, generator=gen_prior)
        out["ce_prior"].append(_token_ce(model, z_p.to(dev), inp, tgt)[1].sum(1).cpu())
        out["n_tokens"].append(mask.sum(1).cpu())
        out["correct"].append(((logits.argmax(-1) == tgt) & mask).sum(1).cpu())
        types = type_of[tgt]  # (B, T-1)
        onehot = F.one_hot(types, len(TYPE_NAMES)) * mask[..., None]  # (B, T-1, 6)
        out["ce_type"].append((ce[..., None] * onehot).sum(1).cpu())
        out["ce_type_partner"].append((ce_p[..., None] * onehot).sum(1).cpu())
        out["n_type"].append(onehot.sum(1).cpu())
    res = {k: torch.cat(v).double().numpy() for k, v in out.items()}
    res["mu"], res["logvar"] = mu_all.numpy(), lv_all.numpy()
    return res
