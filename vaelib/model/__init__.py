"""Stage 2: the β-VAE (``vae``), its training objective (``objective``), encoding and decoding (``encoding``,
``generation``) and checkpoints (``checkpoint``: save, list, ``load_model``).

``python -m vaelib.model`` (console script ``vaelib-generate``) samples basslines from a trained run.
"""
from vaelib.model.vae import VAE

__all__ = ["VAE"]
