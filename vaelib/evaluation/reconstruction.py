"""Free-running reconstructions, scored: greedy decodes of μ(x) and of another piece's μ (the unconditional baseline)
against the tokenized reference, per pair, under each of the given CC value rules (``generation.CC_VALUES``).
``evaluate.evaluate_run`` calls ``score_reconstructions``; definitions are in ``evaluate``'s docstring."""
from __future__ import annotations

import numpy as np

from vaelib.data.tokenizer import EOS
from vaelib.evaluation import metrics as M
from vaelib.evaluation.mrstft import mr_stft_performances
from vaelib.model.generation import decode

SAMPLE_RATE = 22050  # MR-STFT renders at 22.05 kHz


def end_step(ids, tokenizer) -> int:
    """Grid step where a token stream ends: the TIME_SHIFTs before its first EOS, summed."""
    ids = np.asarray(ids, np.int64)
    eos = np.nonzero(ids == EOS)[0]
    ids = ids[: eos[0]] if len(eos) else ids
    typ = tokenizer.token_types(ids)
    return int((ids[typ == 4] - tokenizer.shift0 + 1).sum())


def score_pairs(refs, ests, ref_ids, est_ids, tokenizer, render: bool = True, n_workers: int = 1) -> dict:
    """Per-pair arrays: cc_me, cc_length_mismatch (steps), note_f1, frame_accuracy, mr_stft (nan if not rendered)."""
    out = {
        "cc_me": np.array([M.cc_me(r, e) for r, e in zip(refs, ests)]),
        "cc_length_mismatch": np.array([end_step(e, tokenizer) - end_step(r, tokenizer)
                                        for r, e in zip(ref_ids, est_ids)], np.float64),
        "note_f1": np.array([M.note_f1(r, e) for r, e in zip(refs, ests)]),
        "frame_accuracy": np.array([M.frame_accuracy(r, e) for r, e in zip(refs, ests)]),
    }
    if render:

        out["mr_stft"] = mr_stft_performances(refs, ests, sample_rate=SAMPLE_RATE, n_workers=n_workers)
    else:
        out["mr_stft"] = np.full(len(refs), np.nan)
    return out


def score_reconstructions(model, tokenizer, mu: np.ndarray, partner: np.ndarray, refs, seqs, rules,
                          render: bool = True, n_workers: int = 1, seed: int = 0):
    """Greedy decodes of ``mu`` (the reconstructions) and of ``mu[partner]`` (the unconditional baseline) under each
    CC value rule of ``rules`` (the headline's first), scored against ``refs`` / ``seqs`` with ``score_pairs``; only
    the headline rule's pairs are rendered for MR-STFT (with ``render``). Returns that rule's (rec, base, recon_ids)
    and ``by_cc_value``: per rule, CC-ME and onset F1 of both, their CC-ME ratio and paired test, and the modulation
    depths and motions."""
    z = np.concatenate([mu, mu[partner]])  # one greedy pass over both: batching leaves greedy output unchanged
    reference_depth = float(np.mean([M.cc_depth(p) for p in refs]))
    reference_motion = float(np.mean([M.cc_motion(p) for p in refs]))
    by_rule, head = {}, None
    for rule in rules:
        both = decode(model, z, greedy=True, tokenizer=tokenizer, batch_size=256, cc_value=rule)
        recon_ids, base_ids = both[:len(seqs)], both[len(seqs):]
        recons = [tokenizer.decode(s, tempo_bpm=r.tempo_bpm) for s, r in zip(recon_ids, refs)]
        bases = [tokenizer.decode(s, tempo_bpm=r.tempo_bpm) for s, r in zip(base_ids, refs)]
        audio = render and rule == rules[0]
        rec = score_pairs(refs, recons, seqs, recon_ids, tokenizer, audio, n_workers)
        base = score_pairs(refs, bases, seqs, base_ids, tokenizer, audio, n_workers)
        by_rule[rule] = {"cc_me": M.summarize(rec["cc_me"], seed), "baseline_cc_me": M.summarize(base["cc_me"], seed),
                         "cc_me_ratio": float(rec["cc_me"].mean() / max(base["cc_me"].mean(), 1e-12)),
                         "note_accuracy": M.summarize(rec["note_f1"], seed),
                         "baseline_note_accuracy": M.summarize(base["note_f1"], seed),
                         "vs_baseline_cc_me": M.paired_test(rec["cc_me"], base["cc_me"], seed=seed),
                         "cc_depth": float(np.mean([M.cc_depth(p) for p in recons])),
                         "baseline_cc_depth": float(np.mean([M.cc_depth(p) for p in bases])),
                         "reference_cc_depth": reference_depth,
                         "cc_motion": float(np.mean([M.cc_motion(p) for p in recons])),
                         "baseline_cc_motion": float(np.mean([M.cc_motion(p) for p in bases])),
                         "reference_cc_motion": reference_motion}
        if rule == rules[0]:
            head = (rec, base, recon_ids)
    return (*head, by_rule)
