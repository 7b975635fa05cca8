"""Token fuzzing (issue 8 item 2): any in-range id array decodes and writes MIDI that mido reads back."""
import mido
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaelib.midi import write_midi
from vaelib.tokenizer import BOS, EOS, PAD, TokenError, Tokenizer

TOK = Tokenizer()
V = TOK.vocab_size


def _ids_strategy():
    uniform = st.lists(st.integers(0, V - 1), min_size=1, max_size=400).map(lambda x: np.array(x, np.int64))

    # long arrays biased towards the musically busy types, drawn from a seed (hypothesis lists are slow at 3k)
    def biased(seed_len):
        seed, n = seed_len
        rng = np.random.default_rng(seed)
        starts = np.array([0, TOK.vel0, TOK.on0, TOK.off0, TOK.shift0, TOK.cc0, V])
        kind = rng.choice(6, size=n, p=[0.02, 0.15, 0.2, 0.2, 0.18, 0.25])
        return rng.integers(starts[kind], starts[kind + 1])
    return st.one_of(uniform, st.tuples(st.integers(0, 2 ** 32 - 1), st.integers(1, 3000)).map(biased))


def _has_body(ids):
    """False for sequences with no event before the first EOS (decode bug, see test_tokenizer xfail)."""
    eos = np.nonzero(ids == EOS)[0]
    body = ids[: eos[0]] if len(eos) else ids
    return bool((body > EOS).any())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=_ids_strategy())
def test_random_ids_decode_and_write_readable_midi(ids, tmp_path):
    if not _has_body(ids):
        return
    perf = TOK.decode(ids)
    assert perf.n_steps == TOK.config.n_steps and np.all(perf.notes[:, 1] >= 1)
    assert np.all(perf.notes[:, 0] + perf.notes[:, 1] <= perf.n_steps)
    path = write_midi(perf, tmp_path / "fuzz.mid")
    mf = mido.MidiFile(path)
    msgs = [m for tr in mf.tracks for m in tr]
    n_on = sum(m.type == "note_on" and m.velocity > 0 for m in msgs)
    n_cc = sum(m.type == "control_change" for m in msgs)
    assert n_on == perf.n_notes and n_cc == int(perf.cc_changes().sum())
    # the decoded performance re-encodes into a clean sequence that decodes to itself (up to the
    # velocity bin: a NOTE_ON without VELOCITY decodes at 64, which is not a bin centre)
    ids2 = TOK.encode(perf)
    if _has_body(ids2):
        assert TOK.decode(ids2) == perf.with_quantized_velocity()


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.integers(-2 ** 40, 2 ** 40), min_size=1, max_size=50))
def test_out_of_range_ids_raise_token_error(ids):
    arr = np.array(ids, np.int64)
    if np.all((arr >= 0) & (arr < V)):
        return
    with pytest.raises(TokenError):
        TOK.decode(arr)


def test_padding_and_bos_do_not_change_the_decode():
    rng = np.random.default_rng(0)
    body = rng.integers(EOS + 1, V, 500)
    noisy = np.insert(body, rng.integers(0, 500, 80), rng.choice([PAD, BOS], 80))
    assert TOK.decode(noisy) == TOK.decode(body)
