"""CLI: ``python -m vaelib.curate --source synthetic --n-examples 2000 --seed 0 --out DIR``
or ``python -m vaelib.curate --source PATH/TO/MIDI --out DIR`` (searched recursively).

Writes the shards, ``report.json`` and the ``complete`` marker into DIR (see ``vaelib.curation``)
and prints the accounting summary.
"""
from __future__ import annotations

import argparse
import json
import sys

from vaelib.config import get_preset
from vaelib.curation import curate


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m vaelib.curate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="synthetic", help='"synthetic" or a folder of MIDI files')
    ap.add_argument("--out", required=True, help="output data folder")
    ap.add_argument("--preset", default="paper", help="config preset whose DataConfig is the base (paper, small, tiny)")
    ap.add_argument("--n-examples", type=int, help="synthetic windows to generate")
    ap.add_argument("--seed", type=int, help="corpus and split seed")
    ap.add_argument("--complexity", type=float, help="synthetic CC density, 0..1")
    ap.add_argument("--min-notes", type=int, help="reject windows with fewer notes")
    ap.add_argument("--min-cc-changes", type=int, help="reject windows with fewer CC changes (all lanes)")
    ap.add_argument("--max-len", type=int, help="token budget per window, BOS/EOS included")
    ap.add_argument("--thinning", choices=("decimate", "reject"), help="policy for over-budget windows")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    a = ap.parse_args(argv)
    config = get_preset(a.preset).data
    report = curate(a.source, a.out, config, progress=not a.quiet, n_examples=a.n_examples, seed=a.seed,
                    complexity=a.complexity, min_notes=a.min_notes, min_cc_changes=a.min_cc_changes,
                    max_len=a.max_len, thinning=a.thinning)
    brief = {k: report[k] for k in ("files", "windows", "splits", "styles")}
    brief["token_length_median"] = report["token_length"].get("median")
    print(json.dumps(brief, indent=2))
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
