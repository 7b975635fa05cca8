"""Shared by the pilots that decode a run's slot prior (``prior_temperature.py``, ``prior_draw_noise.py``): the run's
model on the CPU, the data folder's tokenizer, and the slot prior the evaluation fitted to that checkpoint; and by
those that fit it again (``prior_steps.py``, ``prior_fit.py``): the posteriors it is fitted to and the windows its
samples are scored against."""
import numpy as np

from vaelib.data.dataset import load_meta, load_split, load_tokenizer
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
