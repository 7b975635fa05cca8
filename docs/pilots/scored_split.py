"""Shared by the pilots that decode a run's reconstructions outside the evaluation (``cc_value.py``,
``cc_window.py``, ``cc_window_width.py``, ``cc_me_by_lane.py``): a data split read as ``evaluate.evaluate_run``
reads it, and the posterior means it decodes."""
import numpy as np
import torch

from vaelib.data.dataset import load_meta, load_split, load_tokenizer
from vaelib.evaluation.evaluate import partners
from vaelib.evaluation.teacher_forced import teacher_forced


def load_scored_split(data_dir, split: str = "test"):
    """(tokenizer, id arrays, meta, reference performances at their tempos, partners with seed 0) of the split."""
    tk = load_tokenizer(data_dir)
    seqs = [np.asarray(s, np.int64) for s in load_split(data_dir, split)]
    meta = load_meta(data_dir, split)
    refs = [tk.decode(s, tempo_bpm=float(m.get("tempo_bpm", 140.0))) for s, m in zip(seqs, meta)]
    partner = partners([str(m.get("source", i)) for i, m in enumerate(meta)], 0)
    return tk, seqs, meta, refs, partner


def posterior_means(model, tk, seqs, partner) -> np.ndarray:
    """μ of every window, from the evaluation's teacher-forced pass (seed 0)."""
    torch.manual_seed(0)
    return teacher_forced(model, seqs, tk, partner, seed=0)["mu"]
