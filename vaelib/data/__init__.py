"""Stage 1 of the data road: MIDI or synthetic windows -> ``Performance`` -> token ids -> curated splits -> batches.

Modules: ``performance`` (the one in-memory form), ``tokenizer`` and ``grammar`` (the event vocabulary and its rules),
``smf`` and ``midi`` (reading Standard MIDI Files), ``midi_write`` (writing them), ``synthetic`` (the embedded
corpus), ``curation`` (windows, filters, splits, ``report.json``), ``dataset`` (reading a curated folder back),
``batching`` (length-bucketed training batches).
``python -m vaelib.data`` (console script ``vaelib-curate``) curates a dataset folder.
"""
from vaelib.data.performance import Performance
from vaelib.data.tokenizer import BOS, EOS, PAD, TYPE_NAMES, Tokenizer

__all__ = ["BOS", "EOS", "PAD", "TYPE_NAMES", "Performance", "Tokenizer"]
