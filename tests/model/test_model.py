"""The Transformer VAE: shapes, padding invariance, KV cache == recomputation, z reaches the decoder."""
import dataclasses
import math

import pytest
import torch

from vaelib.config import get_preset
from vaelib.model.cc_plan import CCPlan
from vaelib.model.vae import BOS_ID, EOS_ID, PAD_ID, VAE


@pytest.fixture
def model(tiny_model):
    return tiny_model


def _batch(B=3, T=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 1603, (B, T), generator=g)
    ids[:, 0] = BOS_ID
    ids[:, -1] = EOS_ID
    ids[1, 25] = EOS_ID
    ids[1, 26:] = PAD_ID
    return ids


def test_shapes(model):
    ids = _batch()
    out = model(ids)
    D, V = model.config.latent_dim, model.config.vocab_size
    assert out["logits"].shape == (3, 39, V)
    assert out["targets"].shape == (3, 39)
    assert torch.equal(out["targets"], ids[:, 1:])
    for k in ("mu", "logvar", "z"):
        assert out[k].shape == (3, D)


def test_padding_does_not_change_the_encoding(model):
    ids = _batch()
    mu_padded, lv_padded = model.encode(ids[1:2])
    mu_trim, lv_trim = model.encode(ids[1:2, :26])
    assert torch.allclose(mu_padded, mu_trim, atol=1e-6)
    assert torch.allclose(lv_padded, lv_trim, atol=1e-6)


def test_logvar_is_clamped():
    cfg = get_preset("tiny").model
    m = VAE(cfg).eval()
    with torch.no_grad():
        m.to_logvar.bias.fill_(1e4)
    _, logvar = m.encode(_batch())
    assert float(logvar.max()) == cfg.logvar_max


@pytest.mark.parametrize("n_memory,z_to_input", [(1, False), (4, True)])
def test_kv_cache_matches_recomputation(n_memory, z_to_input):
    torch.manual_seed(1)
    cfg = dataclasses.replace(get_preset("tiny").model, n_memory=n_memory, z_to_input=z_to_input)
    m = VAE(cfg).eval()
    z = torch.randn(4, cfg.latent_dim)
    cached, uncached = m.greedy(z, 80), m.greedy(z, 80, use_cache=False)
    assert torch.equal(cached, uncached)
    state = m.start(z, 80)
    stepped = torch.stack([m.step(cached[:, t], state) for t in range(cached.shape[1] - 1)], 1)
    with torch.no_grad():
        full = m.decode(z, cached[:, :-1])
    assert torch.allclose(stepped, full, atol=1e-5)


def test_decoder_output_depends_on_z(model):
    ids = _batch()[:, :-1]
    with torch.no_grad():
        a = model.decode(torch.zeros(3, model.config.latent_dim), ids)
        b = model.decode(torch.ones(3, model.config.latent_dim), ids)
    assert (a - b).abs().max() > 1e-4


def test_word_dropout_only_in_training(model):
    ids = _batch()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        a = model(ids, word_dropout=0.9, sample=False, generator=g)["logits"]
        b = model(ids, word_dropout=0.0, sample=False)["logits"]
    assert torch.equal(a, b)  # eval mode: no dropout of any kind


def test_too_long_sequence_is_a_clear_error(model):
    z = torch.zeros(1, model.config.latent_dim)
    ids = torch.ones(1, model.config.max_len + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="max_len"):
        model.decode(z, ids)


def test_cpu_dropout_keeps_1_minus_p_scales_and_passes_the_mask_to_the_gradient():
    from vaelib.model.vae import Dropout

    torch.manual_seed(0)
    drop = Dropout(0.1).train()
    x = torch.ones(400, 1000, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(float(kept.float().mean()) - 0.9) < 0.003  # 400k Bernoulli(0.9) draws: sd 0.0005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9))  # inverted dropout keeps the mean
    assert abs(float(y.mean()) - 1.0) < 0.004
    y.sum().backward()
    assert torch.equal(x.grad != 0, kept) and torch.allclose(x.grad[kept], y[kept])
    cols = kept.view(400, 250, 4).float().mean((0, 1))  # each 16-bit slice of a 64-bit draw is unbiased
    assert float((cols - 0.9).abs().max()) < 0.005
    assert not torch.equal(drop(x), y)  # a fresh mask per call
    assert torch.equal(drop.eval()(x), x)  # identity in eval mode


# ---------------------------------------------------------------------------- factorised, structural, notes head
def _rich(**kw):
    return dataclasses.replace(get_preset("tiny").model, embedding="factorised", structural=True, notes_head=True,
                               **kw)


def _assert_cache_matches_teacher_forcing(m, z, ids):
    """The KV-cached decoder fed ``ids`` one token at a time gives teacher forcing's logits at every real position."""
    with torch.no_grad():
        state = m.start(z, ids.shape[1])
        stepped = torch.stack([m.step(ids[:, t], state) for t in range(ids.shape[1] - 1)], 1)
        full = m.decode(z, ids[:, :-1])
    real = ids[:, 1:] != PAD_ID
    assert torch.allclose(stepped[real], full[real], atol=1e-5)


def _real_batch(n=3):
    from vaelib.data.batching import pad_batch
    from vaelib.data.synthetic import generate
    from vaelib.data.tokenizer import Tokenizer

    tk = Tokenizer(get_preset("tiny").data.tokenizer)
    perfs = generate(n)
    return perfs, pad_batch([tk.encode(p) for p in perfs])


def test_factorised_rows_share_the_pitch_and_cc_value_tables():
    m = VAE(_rich()).eval()
    E, lay = m.embedding_matrix(), m.layout
    on, off = lay.on0 + 40, lay.off0 + 40  # NOTE_ON 40 and NOTE_OFF 40: same value row, different kinds
    assert lay.value[on] == lay.value[off] and lay.kind[on] != lay.kind[off]
    a, b = lay.cc0 + 7, lay.cc0 + 128 + 7  # value 7 on lanes 0 and 1
    assert lay.value[a] == lay.value[b]
    assert torch.allclose(E[a] - E[b], m.kind_emb.weight[lay.kind[a]] - m.kind_emb.weight[lay.kind[b]])
    # the tied head scores an id with its own input row
    h = torch.randn(1, 1, m.config.d_model)
    assert torch.allclose(m._logits(h)[0, 0], E @ h[0, 0], atol=1e-5)


def test_structure_follows_the_performance():
    perfs, ids = _real_batch()
    m = VAE(_rich()).eval()
    el, snd = m.layout.elapsed(ids), m.layout.sounding(ids)
    for i, p in enumerate(perfs):
        n = int((ids[i] != PAD_ID).sum())
        assert 0 < int(el[i, n - 1]) <= p.n_steps
        roll = p.piano_roll() > 0  # (128, n_steps)
        # after the last token of each grid step, the sounding set equals the piano roll's column
        for t in range(n - 1):
            if el[i, t + 1] > el[i, t] and el[i, t] < p.n_steps:
                assert torch.equal(snd[i, t].bool(), torch.as_tensor(roll[:, int(el[i, t])]))


def test_onset_targets_hold_each_steps_lowest_onset_pitch():
    perfs, ids = _real_batch()
    m = VAE(_rich()).eval()
    tg = m.layout.onset_targets(ids, 128)
    for i, p in enumerate(perfs):
        want = torch.zeros(128, dtype=torch.long)
        for onset, _, pitch, _ in sorted(p.notes.tolist(), key=lambda r: -r[2]):
            want[onset] = pitch + 1
        assert torch.equal(tg[i], want)


def test_kv_cache_matches_recomputation_with_structural_inputs():
    torch.manual_seed(2)
    m = VAE(_rich()).eval()
    _, ids = _real_batch()
    with torch.no_grad():
        z = m.encode(ids)[0]
    _assert_cache_matches_teacher_forcing(m, z, ids)
    assert torch.equal(m.greedy(z, 60), m.greedy(z, 60, use_cache=False))


def test_notes_head_reads_z_alone():
    m = VAE(_rich()).eval()
    _, ids = _real_batch()
    out = m(ids, sample=False)
    assert out["notes_logits"].shape == (3, 128, 129) and out["notes_targets"].shape == (3, 128)
    with torch.no_grad():
        assert torch.allclose(m.notes_logits(out["mu"]), out["notes_logits"])


def test_word_dropout_also_hides_the_dropped_positions_structure():
    m = VAE(_rich()).train()
    _, ids = _real_batch()
    g = torch.Generator().manual_seed(0)
    seen = {}
    orig = m.decode
    m.decode = lambda z, ids_in, structure=None, *rest: (seen.update(ids_in=ids_in, s=structure)
                                                         or orig(z, ids_in, structure, *rest))
    m(ids, word_dropout=0.5, generator=g)
    dropped = (seen["ids_in"] == PAD_ID) & (ids[:, :-1] != PAD_ID)
    assert dropped.any()
    assert float(seen["s"][dropped].abs().max()) == 0.0
    assert float(seen["s"][~dropped & (ids[:, :-1] != PAD_ID)].abs().sum(-1).min()) > 0
    # cc_word_dropout: its own rate for the CC tokens, word_dropout's for the rest
    m(ids, word_dropout=0.0, cc_word_dropout=1.0, generator=g)
    real, cc = ids[:, :-1] != PAD_ID, m.layout.kind[ids[:, :-1]] >= 7
    cc[:, 0] = False
    dropped = (seen["ids_in"] == PAD_ID) & real
    assert cc.any() and torch.equal(dropped, cc)


@pytest.mark.parametrize("pool,plan_input,cc", [("attention", False, False), ("grid", False, False),
                                                ("grid", True, False), ("beat", True, False), ("beat", True, True)])
def test_pools_and_plan_inputs_keep_padding_and_cache_invariants(pool, plan_input, cc):
    torch.manual_seed(3)
    m = VAE(_rich(plan_memory=True, pool=pool, n_pool=4, plan_input=plan_input, cc_plan=cc, cc_copy=cc,
                  cc_pool=cc)).eval()
    _, ids = _real_batch()
    with torch.no_grad():
        n = int((ids[1] != PAD_ID).sum())
        a, b = m.encode(ids[1:2])[0], m.encode(ids[1:2, :n])[0]
        assert torch.allclose(a, b, atol=1e-5)
        z = m.encode(ids)[0]
        assert m.memory(z).shape == (3, m.config.n_memory + 128, m.config.d_model)
    _assert_cache_matches_teacher_forcing(m, z, ids)


def test_beat_slots_each_hold_their_own_beat():
    """With pool='beat', z is one slot per beat, and the notes head reads each beat's steps from that beat's slot
    only: moving slot 5 changes the logits of beat 5's steps and of no other step."""
    torch.manual_seed(0)
    m = VAE(_rich(pool="beat", latent_dim=32)).eval()
    assert m.n_slots == 16 and m.slot_steps == 8  # a beat of 1/32 steps each
    s = 32 // m.n_slots
    z = torch.randn(2, 32)
    with torch.no_grad():
        base = m.notes_logits(z)
        z2 = z.clone()
        z2[:, 5 * s:6 * s] += 3.0
        moved = (m.notes_logits(z2) - base).abs().amax(-1)  # (B, 128 steps)
    steps = m.slot_steps
    assert float(moved[:, 5 * steps:6 * steps].min()) > 0
    assert float(moved[:, :5 * steps].max()) == 0 and float(moved[:, 6 * steps:].max()) == 0
    m = VAE(_rich(pool="beat", latent_dim=20))  # not a multiple of 16 beats: gcd(20, 16) = 4 slots of a bar each
    assert (m.n_slots, m.slot_steps) == (4, 32)
    assert m.encode(_real_batch(2)[1])[0].shape == (2, 20)


def test_n_slots_chooses_fewer_longer_slots_and_the_cache_still_matches():
    """ModelConfig.n_slots=4 splits z into one slot per bar: moving bar 2's slot changes the notes head and the CC
    plan at bar 2's 32 steps only, and cached decoding still equals teacher forcing."""
    torch.manual_seed(0)
    m = VAE(_rich(pool="beat", latent_dim=32, n_slots=4, plan_input=True, cc_plan=True, cc_copy=True,
                  cc_pool=True)).eval()
    assert (m.n_slots, m.slot_steps, m.slot_dim) == (4, 32, 8)
    _, ids = _real_batch()
    with torch.no_grad():
        z = m.encode(ids)[0]
        z2 = z.clone()
        z2[:, 16:24] += 3.0  # bar 2's slot
        notes = (m.notes_logits(z2) - m.notes_logits(z)).abs().amax(-1)  # (B, 128 steps)
        cc = (m.cc_plan(m.slots(z2)) - m.cc_plan(m.slots(z))).abs().amax((-1, -2))
        for d in (notes, cc):
            assert float(d[:, 64:96].amin()) > 0 and float(d[:, :64].max()) == 0 and float(d[:, 96:].max()) == 0
    _assert_cache_matches_teacher_forcing(m, z, ids)
    for bad in (3, 64, -4):  # must divide latent_dim and the 128 grid steps
        with pytest.raises(ValueError, match="n_slots="):
            VAE(_rich(pool="beat", latent_dim=32, n_slots=bad))
    with pytest.raises(ValueError, match="n_slots needs pool='beat'"):
        VAE(_rich(pool="mean", cc_pool=False, latent_dim=32, n_slots=4))


def test_cc_plan_bar_reads_a_whole_bars_slots_into_its_automation():
    """With cc_plan_bar the CC plan reads each bar's 4 beat slots together: moving one beat's slot changes the plan
    across its whole bar and nowhere else, the notes head at that beat only; cached decoding equals teacher forcing."""
    torch.manual_seed(0)
    m = VAE(_rich(pool="beat", latent_dim=32, plan_input=True, cc_plan=True, cc_copy=True, cc_pool=True,
                  cc_plan_bar=True)).eval()
    _, ids = _real_batch()
    with torch.no_grad():
        z = m.encode(ids)[0]
        z2 = z.clone()
        z2[:, 18:20] += 3.0  # slot 9: bar 2, beat 1 (steps 72..79)
        notes = (m.notes_logits(z2) - m.notes_logits(z)).abs().amax(-1)
        cc = (m.cc_plan(m.slots(z2)) - m.cc_plan(m.slots(z))).abs().amax((-1, -2))
        assert float(cc[:, 64:96].amin()) > 0 and float(cc[:, :64].max()) == 0 and float(cc[:, 96:].max()) == 0
        assert float(notes[:, 72:80].amin()) > 0 and float(notes[:, :72].max()) == 0
        assert float(notes[:, 80:].max()) == 0
    _assert_cache_matches_teacher_forcing(m, z, ids)
    with pytest.raises(ValueError, match="cc_plan_bar needs"):
        VAE(_rich(pool="beat", latent_dim=32, cc_plan=False, cc_copy=False, cc_plan_bar=True))


def test_bar_share_gives_each_bar_a_code_its_beats_read_beside_their_own():
    """With bar_share, z is laid out bar by bar as [bar code | 4 beat codes]: moving bar 2's code changes the notes
    head and the CC plan at bar 2's steps only, moving one beat's code at that beat's steps only; the encoder writes
    the same layout and cached decoding still equals teacher forcing."""
    torch.manual_seed(0)
    m = VAE(_rich(pool="beat", latent_dim=64, bar_share=0.5, plan_input=True, cc_plan=True, cc_copy=True,
                  cc_pool=True)).eval()
    assert (m.bar_dim, m.beat_dim, m.slot_dim) == (8, 2, 34)  # a bar's 16 dims: its code 8, 4 beats x 2
    _, ids = _real_batch()
    with torch.no_grad():
        z, logvar = m.encode(ids)
        assert z.shape == logvar.shape == (3, 64)

        def moved(dims):
            z2 = z.clone()
            z2[:, dims] += 3.0
            notes = (m.notes_logits(z2) - m.notes_logits(z)).abs().amax(-1)  # (B, 128 steps)
            cc = (m.cc_plan(m.slots(z2)) - m.cc_plan(m.slots(z))).abs().amax((-1, -2))
            return notes, cc

        for d in moved(slice(32, 40)):  # bar 2's code
            assert float(d[:, 64:96].amin()) > 0 and float(d[:, :64].max()) == 0 and float(d[:, 96:].max()) == 0
        for d in moved(slice(32 + 8 + 2, 32 + 8 + 4)):  # bar 2, beat 1's own code: steps 72..79
            assert float(d[:, 72:80].amin()) > 0 and float(d[:, :72].max()) == 0 and float(d[:, 80:].max()) == 0
    _assert_cache_matches_teacher_forcing(m, z, ids)
    for bad in (dict(bar_share=0.25, latent_dim=32), dict(bar_share=0.5, n_slots=4, latent_dim=64),
                dict(bar_share=1.0, latent_dim=64)):
        with pytest.raises(ValueError, match="bar_share needs"):
            VAE(_rich(pool="beat", **bad))


def test_bar_lag_reads_the_bar_before_from_past_tokens_and_the_cache_still_matches():
    """With bar_lag the decoder's input at a position holds the onset and the lanes' values one bar before the
    elapsed step (and the step after it): moving one note's pitch changes that input only at the positions whose
    elapsed step is a bar (or a bar less one step) after the note's onset. Incremental decoding fills the same grids
    as teacher forcing reads, so cached decoding equals teacher forcing, greedy included."""
    import dataclasses as dc

    from vaelib.data.batching import pad_batch
    from vaelib.data.tokenizer import Tokenizer

    torch.manual_seed(0)
    m = VAE(_rich(pool="beat", latent_dim=32, plan_memory=True, plan_input=True, cc_plan=True, cc_copy=True,
                  cc_pool=True, bar_lag=True)).eval()
    perfs, ids = _real_batch()
    tk = Tokenizer(get_preset("tiny").data.tokenizer)
    p = perfs[0]
    onsets = p.notes[:, 0]
    i = next(j for j, o in enumerate(onsets) if 0 < o < 90 and (onsets == o).sum() == 1)
    o = int(onsets[i])
    notes = p.notes.copy()
    notes[i, 2] = 127  # a pitch no other note has
    p2 = dc.replace(p, notes=notes)
    a, b = pad_batch([tk.encode(p)]), pad_batch([tk.encode(p2)])
    assert a.shape == b.shape
    with torch.no_grad():
        la, lb = (m.bar_lag(m.layout, x, m.pitch_table())[0] for x in (a, b))
    el = m.layout.elapsed(a)[0]
    moved = (la - lb).abs().amax(-1) > 0
    assert moved.any()
    assert set(el[moved].tolist()) <= {o + 31, o + 32}
    # the grids an incremental decode builds are teacher forcing's at every step it has passed
    with torch.no_grad():
        z = m.encode(ids)[0]
        state = m.start(z, ids.shape[1])
        for t in range(ids.shape[1] - 1):
            m.step(ids[:, t], state)
    S = 128
    assert torch.equal(state.lag.onsets, m.layout.onset_targets(ids, S))
    cc_tf = m.layout.cc_targets(ids, S)
    for r in range(3):
        n = int(state.elapsed[r])
        assert torch.equal(state.lag.cc[r, :min(n, S)], cc_tf[r, :min(n, S)])
    _assert_cache_matches_teacher_forcing(m, z, ids)
    assert torch.equal(m.greedy(z, 80), m.greedy(z, 80, use_cache=False))


def test_cc_cache_counts_each_lanes_past_values_and_the_cache_still_matches():
    """With cc_cache the CC id (lane, value) gets gain_lane * log(1 + its count among the input tokens so far, that
    position's included): nothing before the lane's first token, the count after; other ids untouched; a dropped
    (PAD) token is not counted. Incremental decoding keeps the same counts, so cached decoding equals teacher forcing,
    greedy included."""
    torch.manual_seed(0)
    m = VAE(_rich(pool="beat", latent_dim=32, plan_memory=True, plan_input=True, cc_plan=True, cc_copy=True,
                  cc_pool=True, cc_cache=True)).eval()
    _, ids = _real_batch()
    lay, cache = m.layout, m.cc_cache
    with torch.no_grad():
        cache.gain.copy_(torch.arange(1.0, 1.0 + lay.n_cc))
        bias = cache(ids)  # (B, T, n_cc * 128)
    row = ids[0]
    t = next(j for j in range(1, len(row)) if lay.kind[row[j]] >= 7)  # the first CC token
    k = int(row[t]) - lay.cc0
    lane = k // 128
    assert float(bias[0, t - 1].abs().max()) == 0.0  # before it: no CC seen yet
    assert bias[0, t, k] == pytest.approx((lane + 1) * math.log(2.0))
    assert int((bias[0, t] != 0).sum()) == 1  # only that id
    n = int((row == row[t]).sum())
    assert bias[0, -1, k] == pytest.approx((lane + 1) * math.log(1.0 + n))
    dropped = ids.clone()
    dropped[0, t] = PAD_ID
    with torch.no_grad():
        assert float(cache(dropped)[0, t].abs().max()) == 0.0
    with torch.no_grad():
        z = m.encode(ids)[0]
    _assert_cache_matches_teacher_forcing(m, z, ids)
    assert torch.equal(m.greedy(z, 80), m.greedy(z, 80, use_cache=False))


def test_gated_cc_cache_reads_its_gains_from_the_decoder_state_and_the_cache_still_matches():
    """With cc_cache_gate the gains come from the decoder's state at each position: at init they are the constant
    init gain (the gate's weights start at 0), after a change of the gate they differ between positions; cached
    decoding equals teacher forcing, greedy included."""
    torch.manual_seed(0)
    m = VAE(_rich(pool="beat", latent_dim=32, plan_memory=True, plan_input=True, cc_plan=True, cc_copy=True,
                  cc_pool=True, cc_cache=True, cc_cache_gate=True)).eval()
    _, ids = _real_batch()
    h = torch.randn(3, ids.shape[1], m.config.d_model)
    with torch.no_grad():
        assert torch.allclose(m.cc_cache.gains(h), torch.full((3, ids.shape[1], m.layout.n_cc), 0.5))
        m.cc_cache.gate.weight.normal_(0.0, 0.5)
        g = m.cc_cache.gains(h)
        assert float(g.std(1).min()) > 0 and float(g.min()) > 0
        z = m.encode(ids)[0]
    _assert_cache_matches_teacher_forcing(m, z, ids)
    assert torch.equal(m.greedy(z, 80), m.greedy(z, 80, use_cache=False))
    with pytest.raises(ValueError, match="cc_cache_gate needs cc_cache"):
        VAE(_rich(cc_cache_gate=True))


def test_cc_targets_are_the_lanes_values_in_force_and_the_cc_head_reads_the_plan():
    perfs, ids = _real_batch()
    m = VAE(_rich(pool="beat", latent_dim=32, plan_input=True, cc_head=True, cc_plan=False, cc_copy=False)).eval()
    tg = m.layout.cc_targets(ids, 128)  # (B, 128, n_cc)
    for b, p in enumerate(perfs):
        # the layout's lanes are the tokenizer's CC order, and every lane has a value from step 0
        assert torch.equal(tg[b].T, torch.as_tensor(p.cc, dtype=torch.long))
    # a lane without a value yet is -1: cut the window before its first CC token of lane 0
    first = int((m.layout.kind[ids[0]] == 7).nonzero()[0])
    assert int(m.layout.cc_targets(ids[:1, :first], 128)[0, 0, 0]) == -1
    out = m(ids, sample=False)
    assert out["cc_logits"].shape == (3, 128, m.layout.n_cc, 128) and torch.equal(out["cc_targets"], tg)


def test_cc_plan_biases_each_lanes_values_at_the_elapsed_step_and_nothing_else():
    """The CC plan is a distribution over 128 values per lane and step; with cc_copy the decoder's logits differ from
    the unbiased decoder's exactly by gain_l * log p_plan(v | l, e) on the CC ids, e the steps elapsed at the position."""
    torch.manual_seed(4)
    m = VAE(_rich(pool="beat", latent_dim=32, plan_input=True, cc_plan=True, cc_copy=True, cc_pool=True)).eval()
    _, ids = _real_batch()
    with torch.no_grad():
        m.cc_plan.gain.copy_(torch.linspace(0.5, 2.0, m.layout.n_cc))
        z = m.encode(ids)[0]
        lp = m.cc_plan(m.slots(z))
        assert lp.shape == (3, 128, m.layout.n_cc, 128)
        assert torch.allclose(lp.exp().sum(-1), torch.ones(3, 128, m.layout.n_cc), atol=1e-5)
        biased = m.decode(z, ids[:, :-1])
        m.config = dataclasses.replace(m.config, cc_copy=False)
        plain = m.decode(z, ids[:, :-1])
    diff = biased - plain
    c0 = m.layout.cc0
    assert float(diff[..., :c0].abs().max()) == 0.0
    e = m.layout.elapsed(ids[:, :-1]).clamp(max=128)
    for b, t in [(0, 0), (1, 40), (2, 200)]:
        want = lp[b, e[b, t].clamp(max=127)] * m.cc_plan.gain[:, None]  # the window's end holds the last step
        assert torch.allclose(diff[b, t, c0:], want.flatten(), atol=1e-5)


def test_cc_plan_mix_holds_a_lanes_two_levels_where_one_gaussian_cannot():
    """A lane that is at 20 or at 90 at random steps, which the plan's input does not tell: trained on it, a mixture
    of two Gaussians puts a narrow peak on each level (CE ~1 nat: log 2 and the peaks' width), one Gaussian a broad
    hump over both (~4.8 nats). The mix is a distribution over the 128 values, cached decoding still equals teacher
    forcing, and with one component the plan keeps the parameters it had without the option (old checkpoints load)."""
    def fit(k):
        torch.manual_seed(0)
        plan = CCPlan(dataclasses.replace(_rich(), cc_plan_mix=k), n_slots=1, slot_dim=8, n_cc=1)
        slots = torch.randn(16, 1, 8)
        opt = torch.optim.Adam(plan.parameters(), lr=3e-3)
        for _ in range(300):
            levels = torch.where(torch.rand(16, plan.n_steps, 1) < 0.5, 20, 90)  # new coins each step
            lp = plan(slots)
            loss = -lp.gather(-1, levels[..., None]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return loss.item(), lp.detach()

    one, _ = fit(1)
    two, lp = fit(2)
    assert two < math.log(2) + 0.5 < 4.0 < one
    assert torch.allclose(lp.exp().sum(-1), torch.ones(lp.shape[:-1]), atol=1e-4)
    p = lp[0, 0, 0].exp()
    assert float(p[15:26].sum()) > 0.4 and float(p[85:96].sum()) > 0.4 and float(p[40:70].sum()) < 0.02
    torch.manual_seed(0)
    base = _rich(pool="beat", latent_dim=32, plan_input=True, cc_plan=True, cc_copy=True, cc_pool=True)
    shapes = {k: v.shape for k, v in VAE(base).state_dict().items()}
    assert shapes == {k: v.shape for k, v in VAE(dataclasses.replace(base, cc_plan_mix=1)).state_dict().items()}
    m = VAE(dataclasses.replace(base, cc_plan_mix=3)).eval()
    _, ids = _real_batch()
    with torch.no_grad():
        z = m.encode(ids)[0]
    _assert_cache_matches_teacher_forcing(m, z, ids)
    with pytest.raises(ValueError, match="cc_plan_mix"):
        VAE(dataclasses.replace(base, cc_plan_mix=0))


def test_cc_lane_values_gives_each_lane_its_own_value_scores_from_the_decoder_state():
    """With cc_lane_values each CC lane scores the values through its own gate on h: at init (gates 0) the logits are
    the shared head's; with gates set only the CC ids move, by (h * g_l) . value_v, so two lanes at one position get
    different value distributions; cached decoding still equals teacher forcing."""
    base = _rich(pool="beat", latent_dim=32, plan_input=True, cc_plan=True, cc_copy=True, cc_pool=True)
    torch.manual_seed(0)
    m = VAE(dataclasses.replace(base, cc_lane_values=True)).eval()
    torch.manual_seed(0)
    shared = VAE(base).eval()
    _, ids = _real_batch()
    with torch.no_grad():
        z = m.encode(ids)[0]
        assert torch.equal(m.decode(z, ids[:, :-1]), shared.decode(z, ids[:, :-1]))
        m.cc_value_gate.normal_(0.0, 1.0)
        diff = m.decode(z, ids[:, :-1]) - shared.decode(z, ids[:, :-1])
        c0, r = m.layout.cc0, m.layout.ccv_row0
        assert float(diff[..., :c0].abs().max()) == 0.0
        h = torch.randn(2, m.config.d_model)
        want = (h[:, None] * m.cc_value_gate) @ m.value_emb.weight[r:r + 128].T  # (2, n_cc, 128)
        got = m._logits(h)[:, c0:] - shared._logits(h)[:, c0:]
        assert torch.allclose(got, want.flatten(1), atol=1e-5)
        lanes = diff[0, 10, c0:].view(m.layout.n_cc, 128)
        assert float((lanes[0] - lanes[1]).abs().max()) > 0
    _assert_cache_matches_teacher_forcing(m, z, ids)
    with pytest.raises(ValueError, match="cc_lane_values needs"):
        VAE(dataclasses.replace(base, embedding="plain", cc_lane_values=True, structural=False))


def test_cc_hold_is_the_steps_until_the_lanes_next_value():
    """Layout.cc_hold: each CC token holds until its lane's next token (or the window's end): a lane's holds sum to
    the steps from its first token to the end, and the performance's curve keeps the token's value over its hold;
    other tokens hold 0."""
    perfs, ids = _real_batch()
    m = VAE(_rich())
    hold = m.layout.cc_hold(ids, 128)
    kind, step = m.layout.kind[ids], m.layout.elapsed(ids)
    assert float(hold[kind < 7].abs().max()) == 0.0
    for b, p in enumerate(perfs):
        for lane in range(m.layout.n_cc):
            at = (kind[b] == 7 + lane).nonzero()[:, 0]
            assert float(hold[b, at].sum()) == 128 - int(step[b, at[0]])
            for t in at.tolist():
                e, n = int(step[b, t]), int(hold[b, t])
                assert (p.cc[lane, e:e + n] == int(ids[b, t] - m.layout.cc0) % 128).all()
    # a hand-made stream: lane 0 at steps 0 and 5, lane 1 at step 2
    c0, s0 = m.layout.cc0, m.layout.shift0
    ids = torch.tensor([[1, c0 + 10, s0 + 1, c0 + 128 + 3, s0 + 2, c0 + 20, 2]])  # BOS cc shift2 cc shift3 cc EOS
    assert m.layout.cc_hold(ids, 8).tolist() == [[0, 5, 0, 6, 0, 3, 0]]


def test_cc_pool_hands_each_beat_slot_its_steps_lane_values():
    m = VAE(_rich(pool="beat", latent_dim=32, plan_input=True, cc_plan=True, cc_pool=True)).eval()
    _, ids = _real_batch()
    keep = ids != PAD_ID
    x = torch.randn(*ids.shape, m.config.d_model)
    pooled = m._beat_pool(ids, x, keep)  # (B, 16 slots, ...)
    n_cc, steps = m.layout.n_cc, m.slot_steps
    cc = pooled[..., -steps * 2 * n_cc:].reshape(3, 16, steps, 2 * n_cc)
    tg = m.layout.cc_targets(ids, 128).view(3, 16, steps, n_cc)
    assert torch.equal(cc[..., n_cc:], (tg >= 0).float())
    assert torch.allclose(cc[..., :n_cc], torch.where(tg >= 0, tg / 63.5 - 1.0, 0.0))
    with pytest.raises(ValueError, match="cc_pool needs pool='beat'"):
        VAE(_rich(pool="mean", cc_pool=True))
    with pytest.raises(ValueError, match="cc_copy needs cc_plan"):
        VAE(_rich(cc_plan=False, cc_copy=True))


def test_bar_pattern_shares_each_beats_pattern_across_the_bars():
    """With bar_pattern, z's first 4 x pattern_dim dims are the 4 beat positions' patterns: moving beat 1's pattern
    changes the notes head at beat 1 of every bar and nowhere else; a beat's own variation moves that beat alone."""
    torch.manual_seed(0)
    m = VAE(_rich(pool="beat", latent_dim=64, plan_input=True, bar_pattern=True, cc_plan=True, cc_copy=True)).eval()
    assert (m.pattern_dim, m.own_dim, m.slot_dim) == (4, 3, 7)
    z = torch.randn(2, 64)
    with torch.no_grad():
        base = m.notes_logits(z)
        moved = lambda z2: (m.notes_logits(z2) - base).abs().amax(-1)  # noqa: E731 (B, 128 steps)
        z2 = z.clone()
        z2[:, 4:8] += 3.0  # beat 1's pattern
        d = moved(z2).view(2, 4, 4, 8)  # (B, bar, beat, step)
        assert float(d[:, :, 1].amin()) > 0 and float(d[:, :, [0, 2, 3]].max()) == 0
        z3 = z.clone()
        z3[:, 16 + 6 * 3:16 + 7 * 3] += 3.0  # slot 6 = bar 1, beat 2: its own variation
        d = moved(z3).view(2, 16, 8)
        assert float(d[:, 6].amin()) > 0 and float(d[:, [i for i in range(16) if i != 6]].max()) == 0
        _, ids = _real_batch()
        mu, logvar = m.encode(ids)
        assert mu.shape == logvar.shape == (3, 64)
    _assert_cache_matches_teacher_forcing(m, mu, ids)
    with pytest.raises(ValueError, match="bar_pattern needs"):
        VAE(_rich(pool="beat", latent_dim=16, bar_pattern=True))
