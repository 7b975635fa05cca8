"""Shared by the pilots that decode a run's slot prior (``prior_temperature.py``, ``prior_draw_noise.py``): the run's
model on the CPU, the data folder's tokenizer, and the slot prior the evaluation fitted to that checkpoint; and by
those that fit it again (``prior_steps.py``, ``prior_fit.py``): the posteriors it is fitted to and the windows its
samples are scored against; and ``score_draws``, the evaluation's figures over several seeds of draws."""
import numpy as np

from vaelib.data.dataset import load_meta, load_split, load_tokenizer
from vaelib.evaluation.prior_samples import prior_metrics
from vaelib.model.checkpoint import load_model
from vaelib.model.encoding import encode_split
from vaelib.model.latent_prior import load_slot_prior


def load_run_prior(run_dir, data_dir):
    """(model, tokenizer, slot prior); exits with a clear message when the run has no slot prior for its checkpoint."""
    model, _ = load_model(run_dir, device="cpu")
    tk = load_tokenizer(data_dir)
    prior = load_slot_prior(run_dir, model.checkpoint_path)
    if prior is None:
        raise SystemExit(f"{run_dir}: no slot prior fitted to its checkpoint (evaluate the run first)")
    return model, tk, prior


def load_run_posteriors(run_dir, data_dir):
    """(model, tokenizer, test performances, training performances, the training windows' posteriors (mu, logvar),
    the validation windows' posterior means)."""
    model, _ = load_model(run_dir, device="cpu")
    tk = load_tokenizer(data_dir)
    test = [tk.decode(np.asarray(s, np.int64), tempo_bpm=float(m.get("tempo_bpm", 140.0)))
            for s, m in zip(load_split(data_dir, "test"), load_meta(data_dir, "test"))]
    train_seqs = load_split(data_dir, "train")
    train = [tk.decode(np.asarray(s, np.int64)) for s in train_seqs]
    mu, logvar = encode_split(model, train_seqs)
    val_mu = encode_split(model, load_split(data_dir, "val"))[0]
    return model, tk, test, train, (mu, logvar), val_mu


def score_draws(model, tk, prior, test, train, seeds, n: int, temperature: float) -> tuple[dict, dict]:
    """The evaluation's figures (``prior_metrics``) of ``n`` draws of ``prior`` at ``temperature`` under each of
    ``seeds``: their means (3 decimals) with the spread (sd) of the groove and the duration overlap, and the last
    draw's whole metrics (for the real data's reference figures)."""
    rows = []
    for seed in seeds:
        m = prior_metrics(model, tk, n, test, train, seed, z=prior.sample(n, seed, temperature=temperature))
        mus, ov = m["muspy"], m["overlapping_area"]
        rows.append({"groove": mus["groove_consistency"], "polyphony": mus["polyphony"],
                     "pitch_entropy": mus["pitch_entropy"], "dur_overlap": ov["duration"], "pitch_overlap": ov["pitch"],
                     "cc_value_overlap": ov["cc_value"], "novelty": m["novelty"]["value"],
                     "exact_copy_rate": m["exact_copy_rate"]})
    summary = {**{k: round(float(np.mean([r[k] for r in rows])), 3) for k in rows[0]},
               **{f"{k}_sd": round(float(np.std([r[k] for r in rows], ddof=1)), 3) for k in ("groove", "dur_overlap")}}
    return summary, m
