"""Shared by the pilots that decode a run's slot prior (``prior_temperature.py``, ``prior_draw_noise.py``): the run's
model on the CPU, the data folder's tokenizer, and the slot prior the evaluation fitted to that checkpoint."""
from vaelib.data.dataset import load_tokenizer
from vaelib.model.checkpoint import load_model
from vaelib.model.latent_prior import load_slot_prior


def load_run_prior(run_dir, data_dir):
    """(model, tokenizer, slot prior); exits with a clear message when the run has no slot prior for its checkpoint."""
    model, _ = load_model(run_dir, device="cpu")
    tk = load_tokenizer(data_dir)
    prior = load_slot_prior(run_dir, model.checkpoint_path)
    if prior is None:
        raise SystemExit(f"{run_dir}: no slot prior fitted to its checkpoint (evaluate the run first)")
    return model, tk, prior
