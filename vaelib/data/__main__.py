"""CLI: ``python -m vaelib.data.__main__ --source synthetic --n-examples 2000 --seed 0 --out DIR``
or ``python -m vaelib.data.__main__ --source PATH/TO/MIDI --out DIR --preset small [--cc auto]`` (searched recursively).

Writes the shards, ``report.json`` and the ``complete`` marker into DIR (see ``vaelib.data.curation``)
and prints the accounting summary and the CC census (the controllers that move, on the bass parts and on the
other parts). ``--preset`` must be the preset you will train with: its token budget is the data's.
"""
from __future__ import annotations

import argparse
import json
import sys

from vaelib.config import get_preset
from vaelib.data.curation import curate

CENSUS_TOP = 8  # controllers printed per part


def census_lines(report: dict, top: int = CENSUS_TOP) -> list[str]:
    """The CLI's census summary: the most active controllers on the bass parts and on the other parts."""
    cen = report.get("cc_census", {})
    lines = []
    for part, label in (("bass", "bass parts"), ("other_parts", "other parts")):
        rows = [r for r in cen.get(part, []) if r["windows"]][:top]
        cells = ", ".join(f"CC{r['cc']} ({r['name']}) {r['windows']} windows/{r['changes']} changes" for r in rows)
        lines.append(f"moving CCs on the {label}: {cells or 'none'}")
    c = report.get("controllers", {})
    if c:
        lines.append(f"modelled controllers ({c['chosen_by']}): " + ", ".join(
            f"CC{n} {name}" for n, name in zip(c["cc_numbers"], c["names"])))
    return lines


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m vaelib.data.__main__", description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="synthetic", help='"synthetic" or a folder of MIDI files')
    ap.add_argument("--out", required=True, help="output data folder")
    ap.add_argument("--preset", default="small",
                    help="the preset you will train with (paper, recommended, small, tiny): its DataConfig is the "
                         "base, and its token budget must fit the model (paper: 1024 tokens, small/tiny: 512)")
    ap.add_argument("--cc", default=None,
                    help="controllers to model: CC numbers (74,71,1,...), 'auto' (the 10 most active on the bass "
                         "parts) or 'auto:N'; default: the built-in table (vaelib/controllers.py)")
    ap.add_argument("--n-examples", type=int, help="synthetic windows to generate")
    ap.add_argument("--seed", type=int, help="corpus and split seed")
    ap.add_argument("--complexity", type=float, help="synthetic CC density, 0..1")
    ap.add_argument("--min-notes", type=int, help="reject windows with fewer notes")
    ap.add_argument("--min-cc-changes", type=int, help="reject windows with fewer CC changes (all lanes)")
    ap.add_argument("--max-len", type=int, help="token budget per window, BOS/EOS included")
    ap.add_argument("--thinning", choices=("decimate", "reject"), help="policy for over-budget windows")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    a = ap.parse_args(argv)
    try:
        config = get_preset(a.preset).data
    except KeyError as e:
        ap.error(str(e))
    try:
        report = curate(a.source, a.out, config, progress=not a.quiet, cc=a.cc, n_examples=a.n_examples,
                        seed=a.seed, complexity=a.complexity, min_notes=a.min_notes,
                        min_cc_changes=a.min_cc_changes, max_len=a.max_len, thinning=a.thinning)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    brief = {k: report[k] for k in ("files", "windows", "splits", "styles")}
    brief["token_length_median"] = report["token_length"].get("median")
    print(json.dumps(brief, indent=2))
    for line in census_lines(report):
        print(line)
    for w in report["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
