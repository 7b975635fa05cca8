"""How Table 1 is written for a reader: digits, short objective labels with their legend, column headers and the
caption. Light (no torch), so the report's index can render Table 1 from ``table1.csv`` alone.

Digits: every cell of one column gets the same number of decimals (``decimals``): the first significant digit of
the column's narrowest 95 % CI and two significant digits of its smallest value, at most 4.
Counts (active units, seeds, examples) are integers without a CI.
"""
from __future__ import annotations

import math
import re

# (column of table1.csv, header, unit / direction note for the legend); the reading order of the printed table:
# each model metric beside its unconditional baseline, then the latent-usage cells
COLUMNS = (
    ("cc_me", "CC-ME ↓", "CC mean error, 0-1 scale"),
    ("baseline_cc_me", "Uncond. CC-ME", "same decoder, another piece's z"),
    ("note_accuracy", "Note F1 ↑", "onset F1, 0-1"),
    ("baseline_note_accuracy", "Uncond. note F1", "same decoder, another piece's z"),
    ("mr_stft", "MR-STFT ↓", "spectral distance of the renders"),
    ("recon_ce", "CE ↓", "nats/token, z = μ(x)"),
    ("kl", "KL", "nats/piece"),
    ("active_units", "Active units ↑", "count"),
    ("usage_gap", "Usage gap ↑", "nats/token"),
)
COUNTS = {"active_units", "n_seeds", "n_examples"}
OBJECTIVES = {  # short label -> what it means (the legend under the table)
    "rec.": "the recommended objective: cyclical β with free bits, a β = 0 phase per cycle and word dropout "
            "(defences against posterior collapse)",
    "paper": "the paper's literal objective: cyclical β up to β_max, no defences (the control; expected to "
             "collapse)",
}


def decimals(values, los=(), his=(), max_decimals: int = 4) -> int:
    """Decimals for one column: enough for the first significant digit of its narrowest CI's width and for two
    significant digits of its smallest non-zero value (three where no CI has a width), at most ``max_decimals``."""
    widths = [h - lo for lo, h in zip(los, his) if _finite(lo) and _finite(h) and h - lo > 0]
    mags = [abs(float(v)) for v in values if _finite(v) and v != 0]
    d = -math.floor(math.log10(min(widths))) if widths else 0
    if mags:
        d = max(d, (1 if widths else 2) - math.floor(math.log10(min(mags))))
    return int(min(max(d, 0), max_decimals))


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def fmt(v, d: int) -> str:
    """``v`` with ``d`` decimals; "–" when missing; no sign on a value that rounds to zero."""
    if not _finite(v):
        return "–"
    text = f"{float(v):.{d}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def fmt_ci(v, lo, hi, d: int) -> str:
    """``value [lo, hi]`` with ``d`` decimals; the value alone when the CI is missing."""
    if not (_finite(lo) and _finite(hi)):
        return fmt(v, d)
    return f"{fmt(v, d)} [{fmt(lo, d)}, {fmt(hi, d)}]"


def objective_short(objective: str, control: bool = False) -> str:
    """``"recommended (…; 6 epochs)"`` -> ``"rec., 6 ep."``; ``"paper (…; 3 epochs)"`` -> ``"paper, 3 ep."``."""
    text = str(objective or "")
    name = "paper" if control or text.startswith("paper") else "rec." if text.startswith("recommended") else (
        text.split(" (")[0] or "?")
    m = re.search(r"(\d+) epochs", text)
    return name + (f", {m.group(1)} ep." if m else "")


CC_VALUE_NOTE = {
    "window": "each CC takes the centre of the likeliest run of 5 neighbouring values in its lane",
    "mode": "each CC takes its lane's likeliest value",
    "mean": "each CC takes the value nearest its lane's expected value (the least expected squared error)",
}


def caption(n_examples, n_seeds: int = 1, cc_values=()) -> str:
    """What a reader needs to read Table 1: n, the CI method, the decoder, the baseline, the direction of each
    column. ``cc_values``: the runs' CC value rules (``evaluate.RECON_CC_VALUE``)."""
    n = ", ".join(sorted({str(int(x)) for x in n_examples if _finite(x)})) or "?"
    seeds = "one training seed per size" if n_seeds <= 1 else f"{n_seeds} seeds per size, averaged per piece"
    return (f"Means over n = {n} test pieces ({seeds}). Brackets: 95 % percentile bootstrap CI over pieces "
            "(2,000 resamples; CE and usage gap resample the pieces' summed nats and tokens). "
            f"{decoder_note(cc_values)}"
            "“Uncond.” is the unconditional baseline: the same decoder given another test piece's z (from another "
            "source file), so a model reconstructs a piece only where it beats that column. Active units are a "
            "count (latent dimensions with Var(μ) > 0.01), shown without a CI. ↓ lower is better, ↑ higher is "
            "better; CC-ME and note F1 are on a 0-1 scale, CE and the usage gap in nats per token, KL in nats per "
            "piece.")


def decoder_note(cc_values) -> str:
    """One sentence on how the reconstructions were decoded (empty when no rule is known)."""
    rules = [r for r in dict.fromkeys(cc_values) if isinstance(r, str) and r]
    if not rules:
        return ""
    how = "; ".join(CC_VALUE_NOTE.get(r, r) for r in rules)
    return (f"Reconstructions and the baseline are greedy decodes of z = μ: the likeliest event kind, then CC lane, "
            f"then value, where {how} (the other rule beside it: 03_evaluate and by_cc_value in each run's "
            "metrics.json). ")


PAIRED_NOTE = ("Read p_wilcoxon: the Wilcoxon signed-rank test on the per-piece differences (larger D minus smaller "
               "D), the primary test. p_bootstrap (a paired bootstrap of the mean difference) is a check on it. "
               "Neither is corrected for the number of comparisons; mean_diff's CI is a 95 % bootstrap CI.")


def legend(objectives, controls) -> list[str]:
    """One line per distinct short objective label of Table 1: ``"<short>: <full objective>"``; control rows
    marked as such."""
    seen = {}
    for o, c in zip(objectives, controls):
        short = objective_short(o, bool(c))
        seen.setdefault(short, f"{short}: {o}" + (" (control row)" if c else ""))
    return list(seen.values())


def markdown_notes(objectives, controls, n_examples, n_seeds: int = 1, cc_values=()) -> str:
    """The legend and caption printed under Table 1 in ``table1.md``."""
    lines = ["", "Objective labels:"] + [f"- {x}" for x in legend(objectives, controls)]
    return "\n".join(lines + ["", caption(n_examples, n_seeds, cc_values), ""])
