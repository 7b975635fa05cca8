"""Generation: grammar masks token by token, valid MIDI from any output, KV cache == recomputation, slerp."""
import mido
import numpy as np
import pytest
import torch

from vaelib.config import TokenizerConfig
from vaelib.model.generation import (CC_WINDOW, argmax_by_event, cc_values, decode, draw, event_levels,
                                     filter_logits, interpolate, reconstruct, sample, slerp)
from vaelib.data.grammar import Grammar, check_sequence
from vaelib.data.tokenizer import BOS, EOS, PAD, Tokenizer

TK = Tokenizer(TokenizerConfig(max_len=384))


def midi_notes_inside(perf, tmp_path, name):
    """Write with vaelib.data.midi, read back with mido; return (n note-ons, n CCs), asserting the window."""
    from vaelib.data.midi_write import write_midi

    path = write_midi(perf, tmp_path / f"{name}.mid")
    mid = mido.MidiFile(path)
    t, ons, ccs = 0.0, 0, 0
    for msg in mid:  # iteration yields delta times in seconds
        t += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            ons += 1
            assert t < perf.duration_sec + 1e-6
        ccs += msg.type == "control_change"
    assert t <= perf.duration_sec + 0.05
    return ons, ccs


def random_logit_sequences(B, max_len, seed, monophonic=False, bias=None):
    g = torch.Generator().manual_seed(seed)
    gr = Grammar(TK, B, max_len=max_len, monophonic=monophonic)
    out = torch.full((B, max_len), PAD)
    out[:, 0] = BOS
    for t in range(1, max_len):
        mask = gr.allowed()
        assert mask.any(1).all(), "a live row has no legal token"
        logits = torch.randn(B, TK.vocab_size, generator=g) * 3 + (0 if bias is None else bias)
        tok = torch.where(gr.done, PAD, draw(logits.masked_fill(~mask, float("-inf")), g))
        assert mask[torch.arange(B), tok].all()
        out[:, t] = tok
        gr.update(tok)
        if gr.done.all():
            break
    assert gr.done.all()
    return [row[: np.nonzero(row == EOS)[0][0] + 1] for row in out.numpy()]


@pytest.mark.parametrize("monophonic", [False, True], ids=["poly", "mono"])
def test_random_logits_obey_grammar_and_give_valid_midi(tmp_path, monophonic):
    # odd rows lean towards notes and time, even rows are plain noise; a short budget forces EOS
    bias = torch.zeros(TK.vocab_size)
    bias[TK.vel0:TK.cc0] = 3.0
    bias = bias[None] * (torch.arange(16) % 2)[:, None]
    bias[:, EOS] = -6.0
    n_natural = n_forced = 0
    for max_len in (300, 40):
        seqs = random_logit_sequences(16, max_len, seed=max_len, monophonic=monophonic, bias=bias)
        for i, s in enumerate(seqs):
            check_sequence(TK, s, max_len=max_len, monophonic=monophonic)
            perf = TK.decode(s)
            if monophonic:  # no two notes overlap
                on, end = perf.notes[:, 0], perf.notes[:, 0] + perf.notes[:, 1]
                assert np.all(on[1:] >= end[:-1])
            if len(s) < max_len:  # ended on its own: the stream is canonical, it re-encodes to itself
                assert np.array_equal(TK.encode(perf), s)
                n_natural += 1
            else:
                n_forced += 1
            ons, _ = midi_notes_inside(perf, tmp_path, f"r{max_len}_{i}")
            assert ons == perf.n_notes
    assert n_natural >= 4 and n_forced >= 4


def test_grammar_accepts_every_token_of_real_windows():
    # completeness: the canonical streams of the synthetic corpus (what the models learn) pass the masks token by
    # token, in one batch of rows that end at different lengths
    from vaelib.data.synthetic import generate

    seqs = [s for s in (TK.encode(p) for p in generate(24, seed=11)) if len(s) <= TK.config.max_len]
    assert len(seqs) >= 12
    B, T = len(seqs), max(len(s) for s in seqs)
    gr = Grammar(TK, B, max_len=TK.config.max_len)
    ids = torch.full((B, T), PAD)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.as_tensor(s)
    for t in range(1, T):
        tok = ids[:, t]
        assert gr.allowed()[torch.arange(B), tok].all(), f"a real token refused at position {t}"
        gr.update(tok)
    assert gr.done.all()


def test_time_budget_and_forced_eos_on_shift_heavy_logits():
    bias = torch.zeros(TK.vocab_size)
    bias[TK.shift0:TK.cc0] = 8.0  # the model wants only to move time
    for s in random_logit_sequences(8, 384, seed=2, bias=bias):
        check_sequence(TK, s, max_len=384)
        amounts = s[TK.token_types(s) == 4] - TK.shift0 + 1
        assert amounts.sum() <= TK.config.n_steps


def test_untrained_tiny_model_samples_obey_grammar(tiny_model, tmp_path):
    for mono in (False, True):
        seqs = sample(tiny_model, 6, seed=3, tokenizer=TK, monophonic=mono, max_len=256, top_p=0.95)
        for i, s in enumerate(seqs):
            check_sequence(TK, s, max_len=256, monophonic=mono)
            perf = TK.decode(s)
            assert midi_notes_inside(perf, tmp_path, f"m{mono}{i}")[0] == perf.n_notes


def test_unmasked_output_still_decodes_to_valid_midi(tiny_model, tmp_path):
    seqs = sample(tiny_model, 4, seed=4, tokenizer=TK, grammar=False, max_len=128)
    for i, s in enumerate(seqs):
        assert s[0] == BOS and s[-1] == EOS and len(s) <= 128
        perf = TK.decode(s)
        assert (perf.notes[:, 0] < perf.n_steps).all()
        assert midi_notes_inside(perf, tmp_path, f"u{i}")[0] == perf.n_notes


@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
def test_kv_cached_decoding_equals_uncached(tiny_model, greedy):
    z = torch.randn(3, tiny_model.config.latent_dim, generator=torch.Generator().manual_seed(5))
    kw = dict(greedy=greedy, temperature=1.3, top_k=50, tokenizer=TK, max_len=96)
    cached = decode(tiny_model, z, generator=torch.Generator().manual_seed(6), **kw)
    plain = decode(tiny_model, z, generator=torch.Generator().manual_seed(6), use_cache=False, **kw)
    assert [len(s) for s in cached] == [len(s) for s in plain]
    for a, b in zip(cached, plain):
        assert np.array_equal(a, b)


def test_batching_does_not_change_greedy_output(tiny_model):
    z = torch.randn(5, tiny_model.config.latent_dim, generator=torch.Generator().manual_seed(7))
    one = decode(tiny_model, z, greedy=True, tokenizer=TK, max_len=80, batch_size=5)
    two = decode(tiny_model, z, greedy=True, tokenizer=TK, max_len=80, batch_size=2)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))


def test_filters_keep_top_k_and_nucleus():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).sum() == 2
    assert torch.isfinite(filter_logits(logits, top_p=0.75)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.1)).sum() == 1  # the best token always stays
    assert torch.isfinite(filter_logits(logits, temperature=0.5)).all()
    # inverse-CDF draws follow the distribution
    g = torch.Generator().manual_seed(0)
    toks = torch.cat([draw(logits.expand(1000, -1), g) for _ in range(4)])
    freq = torch.bincount(toks, minlength=4).float() / len(toks)
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.03)


def test_slerp_endpoints_and_norm():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=16), rng.normal(size=16)
    path = interpolate(a, b, 7)
    assert path.shape == (7, 16)
    assert np.array_equal(path[0], a.astype(np.float32)) and np.array_equal(path[-1], b.astype(np.float32))
    # between two vectors of equal norm slerp stays on the sphere (lerp would cut inside)
    b = b / np.linalg.norm(b) * np.linalg.norm(a)
    mid = slerp(a, b, 0.5)
    assert np.isclose(np.linalg.norm(mid), np.linalg.norm(a))
    assert np.allclose(slerp(a, a, 0.3), a)  # parallel: no division by zero


def test_reconstruct_keeps_labels(tiny_model):
    from vaelib.data.synthetic import generate

    perfs = generate(2, seed=0)
    out = reconstruct(tiny_model, TK, perfs, max_len=64)
    assert [p.source for p in out] == [p.source for p in perfs]
    assert [p.tempo_bpm for p in out] == [p.tempo_bpm for p in perfs]


def test_cli_writes_midi_with_notes_and_ccs_and_wav(tmp_path, capsys):
    import soundfile as sf

    from vaelib.config import get_preset
    from vaelib.data.curation import curate
    from vaelib.data.dataset import load_split
    from vaelib.model.checkpoint import load_model
    from vaelib.model.encoding import encode_split
    from vaelib.model.generation import main
    from vaelib.model.latent_prior import PRIOR_FILE, checkpoint_label, fit_slot_prior, save_slot_prior
    from vaelib.training.fit import fit

    curate("synthetic", tmp_path / "data", progress=False, n_examples=12, max_len=384)
    fit(get_preset("tiny", epochs=1), tmp_path / "data", tmp_path / "run dir", max_steps=2)
    main(["--run-dir", str(tmp_path / "run dir"), "--n", "3", "--out", str(tmp_path / "out"), "--top-p", "0.9",
          "--monophonic"])
    mids = sorted((tmp_path / "out").glob("*.mid"))
    wavs = sorted((tmp_path / "out").glob("*.wav"))
    assert len(mids) == 3 and len(wavs) == 3
    assert all(" " not in p.name for p in mids + wavs)  # safe names even from "run dir"
    for m, w in zip(mids, wavs):
        msgs = list(mido.MidiFile(m))
        assert any(x.type == "note_on" and x.velocity > 0 for x in msgs)
        assert any(x.type == "control_change" for x in msgs)
        assert sf.info(str(w)).samplerate == 44100
    # z from the Gaussian fitted to the training posteriors: as many files, from other draws of z
    main(["--run-dir", str(tmp_path / "run dir"), "--n", "2", "--out", str(tmp_path / "fitted"), "--no-grammar",
          "--fitted-prior", str(tmp_path / "data")])
    assert len(list((tmp_path / "fitted").glob("*.mid"))) == 2
    # z from the slot prior fitted to the same posteriors (a short fit: the CLI path, not the prior's quality)
    main(["--run-dir", str(tmp_path / "run dir"), "--n", "2", "--out", str(tmp_path / "learned"), "--no-grammar",
          "--learned-prior", str(tmp_path / "data"), "--learned-prior-steps", "20"])
    assert len(list((tmp_path / "learned").glob("*.mid"))) == 2
    # --learned-prior alone loads the run's slot_prior.pt, which must be fitted to the checkpoint that loads
    run = tmp_path / "run dir"
    with pytest.raises(SystemExit):  # none yet
        main(["--run-dir", str(run), "--n", "2", "--out", str(tmp_path / "saved"), "--learned-prior"])
    assert "has no slot prior fitted to its checkpoint" in capsys.readouterr().err
    model = load_model(run)[0]
    mu, logvar = encode_split(model, load_split(tmp_path / "data", "train"))
    save_slot_prior(fit_slot_prior(mu, logvar, mu, steps=5, seed=0), run, checkpoint_label(model.checkpoint_path))
    main(["--run-dir", str(run), "--n", "2", "--out", str(tmp_path / "saved"), "--no-grammar", "--learned-prior"])
    assert len(list((tmp_path / "saved").glob("*.mid"))) == 2
    main(["--run-dir", str(run), "--n", "2", "--out", str(tmp_path / "cool"), "--no-grammar", "--learned-prior",
          "--prior-temperature", "0.5"])
    assert len(list((tmp_path / "cool").glob("*.mid"))) == 2
    with pytest.raises(SystemExit):  # a temperature for draws that no slot prior makes
        main(["--run-dir", str(run), "--out", str(tmp_path / "x"), "--prior-temperature", "0.5"])
    assert "--prior-temperature sets the draws of --learned-prior" in capsys.readouterr().err
    (run / PRIOR_FILE).write_bytes(b"truncated")  # unreadable: named in a warning, then the same clear error
    with pytest.warns(RuntimeWarning, match="not a readable slot prior"), pytest.raises(SystemExit):
        main(["--run-dir", str(run), "--n", "2", "--out", str(tmp_path / "saved"), "--learned-prior"])
    assert "has no slot prior fitted to its checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # the fitting steps belong to a fit
        main(["--run-dir", str(run), "--out", str(tmp_path / "x"), "--learned-prior", "--learned-prior-steps", "5"])
    assert "--learned-prior-steps sets the fit of --learned-prior DATA_DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--run-dir", str(tmp_path / "run dir"), "--out", str(tmp_path / "both"),
              "--fitted-prior", str(tmp_path / "data"), "--learned-prior", str(tmp_path / "data")])


def test_greedy_picks_the_likeliest_event_then_its_value():
    levels = event_levels(TK)
    logits = torch.full((3, TK.vocab_size), -30.0)
    # row 0: one CC value (p ~ .2) beats every velocity bin, but the note-start kind holds ~.8 in 32 bins
    logits[0, TK.cc0 + 5] = 2.0
    logits[0, TK.vel0:TK.vel0 + 32] = 0.6
    logits[0, TK.vel0 + 20] = 0.7
    # row 1: CC is the likeliest kind; lane 3 holds more mass over its values than lane 0's single peak
    logits[1, TK.cc0 + 7] = 3.0
    logits[1, TK.cc0 + 3 * 128: TK.cc0 + 4 * 128] = 1.0
    logits[1, TK.cc0 + 3 * 128 + 99] = 1.5
    # row 2: a clear winner is the plain argmax too; forbidden ids never come back
    logits[2, TK.shift0 + 3] = 5.0
    logits[2, TK.shift0 + 4] = float("inf") * -1
    assert logits[0].argmax() == TK.cc0 + 5  # what a token-level argmax would write
    assert argmax_by_event(logits, levels).tolist() == [TK.vel0 + 20, TK.cc0 + 3 * 128 + 99, TK.shift0 + 3]
    assert torch.equal(draw(logits, greedy=True, levels=levels), argmax_by_event(logits, levels))
    assert torch.equal(draw(logits, greedy=True), logits.argmax(-1))


def test_greedy_mean_cc_value_takes_the_allowed_value_nearest_the_lanes_expectation():
    levels, values = event_levels(TK), cc_values(TK)
    logits = torch.full((3, TK.vocab_size), -30.0)
    lane = TK.cc0 + 2 * 128
    # row 0: two modes of a wobble, at 10 (p ~ .55) and 110 (p ~ .45): the mode is 10, the expectation ~55
    logits[0, lane + 10], logits[0, lane + 110] = 5.2, 5.0
    # row 1: the same, but value 55 and 54 are forbidden (the grammar): the nearest allowed value is taken
    logits[1] = logits[0]
    logits[1, lane + 54:lane + 56] = float("-inf")
    # row 2: a note start; the expectation rule leaves every non-CC choice alone
    logits[2, TK.vel0 + 7] = 4.0
    mode = argmax_by_event(logits, levels)
    mean = argmax_by_event(logits, levels, values)
    assert mode.tolist() == [lane + 10, lane + 10, TK.vel0 + 7]
    p = torch.softmax(logits[0, lane:lane + 128], -1)
    expected = float((p * torch.arange(128)).sum())
    assert 50 < expected < 60 and mean[0] == lane + round(expected)
    allowed = [v for v in range(128) if v not in (54, 55)]
    assert mean[1] - lane == min(allowed, key=lambda v: abs(v - expected)) and mean[2] == TK.vel0 + 7
    assert values[lane + 3] == 3 and values[TK.vel0] == -1 and values[TK.cc0 + 127] == 127


def test_greedy_window_cc_value_takes_the_centre_of_the_likeliest_run_of_values():
    """A lane whose single likeliest value (a lone spike at 100) holds less than a hump of neighbours around 40: the
    window rule takes the hump's centre, the mode the spike; values at a lane's edge and other kinds are handled."""
    levels, values = event_levels(TK), cc_values(TK)
    logits = torch.full((4, TK.vocab_size), -30.0)
    lane = TK.cc0 + 5 * 128
    logits[0, lane + 100] = 5.3  # p ~ .32
    logits[0, lane + 38:lane + 43] = torch.tensor([4.0, 4.4, 4.6, 4.4, 4.0])  # p ~ .68 in all, .16 at 40
    logits[1] = logits[0]
    logits[1, lane + 40] = float("-inf")  # forbidden: the likeliest allowed neighbour of the centre
    logits[2, lane + 0:lane + 5] = torch.tensor([4.0, 4.5, 5.0, 4.5, 4.0])  # a hump at the lane's bottom edge
    logits[2, lane + 127] = 5.2
    logits[2, lane + 128] = 6.0  # the next lane's value 0: outside this lane's windows (else 127's would win)
    logits[3, TK.shift0 + 5] = 6.0  # not a CC: the argmax
    mode = argmax_by_event(logits, levels)
    window = argmax_by_event(logits, levels, values, window=2)
    assert mode.tolist()[:3] == [lane + 100, lane + 100, lane + 127]
    assert window[0] == lane + 40 and window[1] in (lane + 39, lane + 41) and window[2] == lane + 2
    assert window[3] == mode[3] == TK.shift0 + 5
    assert torch.equal(argmax_by_event(logits, levels, values, window=0), argmax_by_event(logits, levels, values))


def test_decode_hands_the_cc_value_rule_to_the_greedy_choice(tiny_model, monkeypatch):
    import vaelib.model.generation as generation

    seen = []
    real = generation.argmax_by_event

    def spy(logits, levels, values=None, window=0):
        seen.append((values, window))
        return real(logits, levels, values, window)

    monkeypatch.setattr(generation, "argmax_by_event", spy)
    z = torch.randn(4, tiny_model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    for rule in ("window", "mode", "mean"):
        seen.clear()
        for s in decode(tiny_model, z, greedy=True, tokenizer=TK, max_len=128, cc_value=rule):
            check_sequence(TK, s, max_len=128)  # grammatical under every rule
        assert seen and all((v is None) == (rule == "mode") for v, _ in seen)
        assert all(w == (CC_WINDOW if rule == "window" else 0) for _, w in seen)
        if rule != "mode":
            assert torch.equal(seen[0][0], cc_values(TK))
    seen.clear()
    decode(tiny_model, z, greedy=True, tokenizer=TK, max_len=16)
    assert seen[0][1] == CC_WINDOW  # the default
    with pytest.raises(ValueError, match="cc_value"):
        decode(tiny_model, z, greedy=True, tokenizer=TK, cc_value="median")


def test_fitted_prior_keeps_the_posteriors_mean_and_correlations():
    """Two dimensions that move together in the posteriors (as the slots of a beat that repeats from bar to bar)
    stay together in the fitted prior's draws; N(0, I) would draw them independently."""
    from vaelib.model.encoding import fitted_prior

    rng = np.random.default_rng(0)
    u = rng.standard_normal(500)
    mu = np.stack([u + 2.0, u + 2.0, rng.standard_normal(500)], 1)
    logvar = np.full_like(mu, np.log(0.01))
    z = fitted_prior(mu, logvar, 4000, seed=1).numpy()
    assert z.shape == (4000, 3)
    assert np.allclose(z.mean(0), [2.0, 2.0, 0.0], atol=0.1)
    c = np.corrcoef(z.T)
    assert c[0, 1] > 0.95 and abs(c[0, 2]) < 0.1
    assert np.allclose(z.var(0), mu.var(0) + 0.01, rtol=0.1)
    assert torch.equal(fitted_prior(mu, logvar, 5, seed=1), fitted_prior(mu, logvar, 5, seed=1))
    with pytest.raises(ValueError, match=">= 2 encoded windows"):
        fitted_prior(mu[:1], logvar[:1], 5)


def test_encoding_no_windows_gives_empty_posteriors(tiny_model):
    from vaelib.model.encoding import encode_split

    mu, logvar = encode_split(tiny_model, [])
    assert mu.shape == logvar.shape == (0, tiny_model.config.latent_dim) and mu.dtype == np.float32
