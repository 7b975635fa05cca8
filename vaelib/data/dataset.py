"""A curated data folder, read back: each split's token arrays, per-window meta and decoded performances, the
folder's tokenizer and report, and the experiment config that matches its layout. ``vaelib.data.curation`` writes
the folder (its layout is described there); every reader here refuses one without the ``complete`` marker, so a
folder whose curation was interrupted is never read as finished.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from vaelib.config import TokenizerConfig
from vaelib.data.performance import Performance
from vaelib.data.tokenizer import Tokenizer

SPLITS = ("train", "val", "test")
COMPLETE = "complete"


class IncompleteDatasetError(FileNotFoundError):
    """A data folder without its ``complete`` marker (curation never finished, or is running)."""


def _require_complete(data_dir) -> Path:
    d = Path(data_dir)
    if not (d / COMPLETE).is_file():
        raise IncompleteDatasetError(f"{d} is not a finished curation (no '{COMPLETE}' marker); rerun vaelib.data.__main__")
    return d


def load_split(data_dir, split: str) -> list[np.ndarray]:
    """Token arrays (int64, ``BOS ... EOS``) of one split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    d = _require_complete(data_dir)
    with np.load(d / f"{split}.npz") as z:
        flat, off = z["ids"].astype(np.int64), z["offsets"]
    return [flat[off[i]:off[i + 1]] for i in range(len(off) - 1)]


def load_meta(data_dir, split: str) -> list[dict]:
    """Per-window dicts (style, source, tempo_bpm, n_notes, n_tokens, thinned, cc_changes) of one split."""
    d = _require_complete(data_dir)
    return json.loads((d / f"{split}.meta.json").read_text())


def load_report(data_dir) -> dict:
    return json.loads((_require_complete(data_dir) / "report.json").read_text())


def load_tokenizer(data_dir) -> Tokenizer:
    return Tokenizer(TokenizerConfig.load(_require_complete(data_dir) / "tokenizer.json"))


def config_for_data(config, data_dir):
    """``config`` (an ``ExperimentConfig``) with the data folder's ``TokenizerConfig`` (its controllers and
    budget) and the vocabulary size that tokenizer has: a model trained on the folder speaks its layout."""
    tc = TokenizerConfig.load(_require_complete(data_dir) / "tokenizer.json")
    vocab = Tokenizer(tc).vocab_size
    if tc == config.data.tokenizer and config.model.vocab_size == vocab:
        return config
    return dataclasses.replace(config, data=dataclasses.replace(config.data, tokenizer=tc),
                               model=dataclasses.replace(config.model, vocab_size=vocab))


def budget_error(data_dir, longest: int, model_max_len: int, preset: str) -> str:
    """The message for data longer than the model's positions, with the exact command that fixes it."""
    d = Path(data_dir)
    try:
        budget = TokenizerConfig.load(d / "tokenizer.json").max_len
        source = json.loads((d / "data_config.json").read_text()).get("source", "SRC")
    except (OSError, ValueError):
        budget, source = "?", "SRC"
    return (f"sequences of {longest} tokens exceed model.max_len={model_max_len}: {d} was curated with a "
            f"{budget}-token budget. Curate it for this preset: python -m vaelib.data.__main__ --source {source} "
            f"--out {d} --preset {preset} (or --max-len {model_max_len})")


def load_performances(data_dir, split: str) -> list[Performance]:
    """Decoded windows of one split, with style, source and tempo from the meta."""
    tok = load_tokenizer(data_dir)
    out = []
    for ids, m in zip(load_split(data_dir, split), load_meta(data_dir, split)):
        p = tok.decode(ids, tempo_bpm=m["tempo_bpm"])
        out.append(dataclasses.replace(p, style=m["style"], source=m["source"]))
    return out
