"""ELBO normalisation, KL identities, free bits, per-type CE."""
import math

import numpy as np
import pytest
import torch

from vaelib.model.objective import ce_by_type, elbo, kl_per_dim
from vaelib.data.tokenizer import Tokenizer


def test_kl_zero_at_prior_and_closed_form():
    mu, logvar = torch.zeros(3, 5), torch.zeros(3, 5)
    assert torch.equal(kl_per_dim(mu, logvar), torch.zeros(3, 5))
    mu, logvar = torch.full((1, 1), 2.0), torch.full((1, 1), math.log(0.5))
    assert float(kl_per_dim(mu, logvar)) == pytest.approx(0.5 * (4 + 0.5 - 1 - math.log(0.5)))


def test_elbo_normalisation_sum_over_tokens_mean_over_batch():
    torch.manual_seed(0)
    B, T, V, D = 3, 6, 11, 4
    logits = torch.randn(B, T, V)
    targets = torch.randint(1, V, (B, T))
    targets[0, 4:] = 0  # PAD
    targets[2, 1:] = 0
    mu, logvar = torch.randn(B, D), torch.randn(B, D) * 0.3
    out = elbo(logits, targets, mu, logvar, beta=0.5)
    logp = torch.log_softmax(logits, -1)
    per_seq = [-sum(float(logp[b, t, targets[b, t]]) for t in range(T) if targets[b, t] != 0) for b in range(B)]
    kl_seq = [float(kl_per_dim(mu[b:b + 1], logvar[b:b + 1]).sum()) for b in range(B)]
    assert float(out["ce"]) == pytest.approx(np.mean(per_seq), rel=1e-5)
    assert float(out["kl"]) == pytest.approx(np.mean(kl_seq), rel=1e-5)
    assert float(out["loss"]) == pytest.approx(np.mean(per_seq) + 0.5 * np.mean(kl_seq), rel=1e-5)
    assert int(out["n_tokens"]) == 4 + 6 + 1
    assert float(out["ce_per_token"]) == pytest.approx(sum(per_seq) / 11, rel=1e-5)
    assert out["kl_per_dim"].shape == (D,)
    assert float(out["kl_per_dim"].sum()) == pytest.approx(float(out["kl"]), rel=1e-5)


def test_cc_hold_weight_weights_each_cc_token_by_its_share_of_the_curve_and_reports_the_plain_ce():
    """With cc_hold_weight α and cc_hold_base a a CC token's CE counts a + α · hold / mean hold, the other tokens 1,
    and the reported CE is the unweighted one."""
    torch.manual_seed(0)
    B, T, V, D = 2, 5, 9, 3
    logits, targets = torch.randn(B, T, V), torch.randint(1, V, (B, T))
    targets[1, 4] = 0  # PAD
    hold = torch.tensor([[0.0, 2.0, 6.0, 0.0, 4.0], [1.0, 0.0, 3.0, 0.0, 0.0]])  # 5 CC tokens, mean hold 3.2
    mu, logvar = torch.zeros(B, D), torch.zeros(B, D)
    plain = elbo(logits, targets, mu, logvar, beta=0.0)
    off = elbo(logits, targets, mu, logvar, 0.0, cc_hold=hold, cc_hold_weight=0.0)
    assert float(off["loss"]) == float(plain["loss"])
    ce = -torch.log_softmax(logits, -1).gather(-1, targets[..., None])[..., 0] * (targets != 0)
    for alpha, base in ((0.5, 1.0), (1.0, 1.0), (1.0, 0.0), (1.0, 0.5)):
        w = torch.where(hold > 0, base + alpha * hold / 3.2, 1.0)
        out = elbo(logits, targets, mu, logvar, beta=0.0, cc_hold=hold, cc_hold_weight=alpha, cc_hold_base=base)
        assert float(out["loss"]) == pytest.approx(float((ce * w).sum(1).mean()), rel=1e-5)
        assert float(out["ce"]) == pytest.approx(float(plain["ce"]), rel=1e-6)


def test_elbo_is_fp32_under_bf16_inputs_and_accuracy():
    logits = torch.full((1, 3, 5), -10.0)
    targets = torch.tensor([[2, 3, 4]])
    logits[0, 0, 2] = logits[0, 1, 3] = logits[0, 2, 1] = 10.0  # 2 of 3 right
    out = elbo(logits.bfloat16(), targets, torch.zeros(1, 2).bfloat16(), torch.zeros(1, 2).bfloat16(), 1.0)
    assert out["loss"].dtype == torch.float32 and out["kl"].dtype == torch.float32
    assert float(out["accuracy"]) == pytest.approx(2 / 3)


def test_free_bits_clamp_per_dimension_and_gradient():
    mu = torch.tensor([[0.1, 3.0], [-0.1, 3.0]], requires_grad=True)  # dim 0 tiny KL, dim 1 large
    logvar = torch.zeros(2, 2)
    logits, targets = torch.zeros(2, 1, 4), torch.tensor([[1], [2]])
    out = elbo(logits, targets, mu, logvar, beta=1.0, free_bits=0.25)
    assert float(out["kl_penalised"].detach()) == pytest.approx(0.25 + 4.5)  # dim 0 pinned at λ, dim 1 = 3²/2
    assert float(out["kl"].detach()) == pytest.approx(0.005 + 4.5)  # the reported KL is the true one
    out["loss"].backward()
    assert torch.all(mu.grad[:, 0] == 0)  # below the threshold: no pressure towards collapse
    assert torch.all(mu.grad[:, 1] != 0)


def test_ce_by_type_matches_tokenizer_types():
    tok = Tokenizer()
    type_of = torch.as_tensor(tok.token_types(np.arange(tok.vocab_size)), dtype=torch.long)
    targets = torch.tensor([[tok.vel0, tok.on0 + 40, tok.shift0, tok.off0 + 40, tok.cc0 + 5, 2, 0]])
    logits = torch.zeros(1, 7, tok.vocab_size)
    logits[0, 2, tok.shift0] = 50.0  # the time shift is predicted perfectly
    out = ce_by_type(logits, targets, type_of)
    assert set(out) == {"special", "velocity", "note_on", "note_off", "time_shift", "cc"}
    assert out["time_shift"] == pytest.approx(0.0, abs=1e-6)
    assert out["cc"] == pytest.approx(math.log(tok.vocab_size), rel=1e-5)


def test_notes_loss_and_per_token_scale_keep_the_objective_balance():
    torch.manual_seed(0)
    B, T, V, D, S = 2, 5, 7, 3, 4
    logits, targets = torch.randn(B, T, V), torch.randint(1, V, (B, T))
    targets[1, 3:] = 0
    mu, logvar = torch.randn(B, D), torch.zeros(B, D)
    notes_logits, notes_targets = torch.randn(B, S, 6), torch.tensor([[0, 3, 0, 5], [1, 0, 0, 0]])
    plain = elbo(logits, targets, mu, logvar, beta=2.0)
    out = elbo(logits, targets, mu, logvar, beta=2.0, notes_logits=notes_logits, notes_targets=notes_targets,
               notes_weight=0.5)
    logp = torch.log_softmax(notes_logits, -1)
    notes = -sum(float(logp[b, s, notes_targets[b, s]]) for b in range(B) for s in range(S)) / B
    assert float(out["notes"]) == pytest.approx(notes, rel=1e-5)  # summed over steps, mean over sequences
    assert float(out["loss"]) == pytest.approx(float(plain["loss"]) + 0.5 * notes, rel=1e-5)
    scaled = elbo(logits, targets, mu, logvar, beta=2.0, notes_logits=notes_logits, notes_targets=notes_targets,
                  notes_weight=0.5, per_token=True)
    assert float(scaled["loss"]) == pytest.approx(float(out["loss"]) / ((5 + 3) / 2), rel=1e-5)
    assert float(scaled["ce"]) == pytest.approx(float(out["ce"]))  # the reported terms keep their units


def test_cc_head_loss_sums_known_values_and_skips_unknown_ones():
    torch.manual_seed(1)
    B, T, V, D, S, L = 2, 5, 7, 3, 4, 2
    logits, targets = torch.randn(B, T, V), torch.randint(1, V, (B, T))
    mu, logvar = torch.randn(B, D), torch.zeros(B, D)
    cc_logits = torch.randn(B, S, L, 128)
    cc_targets = torch.randint(0, 128, (B, S, L))
    cc_targets[0, :2, 1] = -1  # lane 1 of sequence 0 has no value before step 2
    plain = elbo(logits, targets, mu, logvar, beta=1.0)
    out = elbo(logits, targets, mu, logvar, beta=1.0, cc_logits=cc_logits, cc_targets=cc_targets, cc_weight=0.25)
    logp = torch.log_softmax(cc_logits, -1)
    cc = -sum(float(logp[b, s, l, cc_targets[b, s, l]]) for b in range(B) for s in range(S) for l in range(L)
              if cc_targets[b, s, l] >= 0) / B
    assert float(out["cc"]) == pytest.approx(cc, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(float(plain["loss"]) + 0.25 * cc, rel=1e-5)
