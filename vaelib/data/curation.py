"""Dataset curation: synthetic corpus or a MIDI folder -> filtered, deduplicated, split, tokenized shards.

``curate(source, out_dir, config)`` writes into ``out_dir``::

    train.npz, val.npz, test.npz      ids (int16, all windows concatenated) + offsets (int64, n+1)
    train.meta.json, ...              one dict per window: style, source, tempo_bpm, n_notes, n_tokens, thinned
    tokenizer.json, data_config.json  the TokenizerConfig and DataConfig used
    report.json                       every input accounted for (below)
    complete                          written last; readers refuse a folder without it

Accounting. A *file* is one MIDI file (for ``synthetic``, one generated example is its own file,
so it has one window). A file is ``usable`` when at least one of its windows is accepted; otherwise
it is rejected with its ``MidiReadError.reason``, ``unexpected_error: <Type>`` for any other
exception, ``no_windows`` when it yields none, or ``no_usable_windows`` when every window was
filtered. So ``files.read == files.usable + sum(files.rejected)`` always.

Windows go through, in order: ``too_few_notes`` (< ``min_notes``), ``static_cc`` (fewer than
``min_cc_changes`` CC changes after the opening snapshot, all lanes together), the tokenizer's
thinning policy (an over-budget window is decimated and counted in ``thinned``, or rejected as
``over_budget``; never truncated), then ``duplicate`` (identical token ids to an earlier window).
``windows.found == windows.accepted + sum(windows.rejected)``.

Controllers. ``cc`` picks the CC numbers the tokenizer models (stored in ``tokenizer.json``, so the vocabulary,
the model and everything downstream follow): None keeps the config's (the default table), a list such as
``(74, 71, 16)`` or ``"74,71,16"`` takes those, and ``"auto"`` / ``"auto:N"`` takes the N (default 10) controllers
that move in the most windows of the folder's bass parts (ties: more changes, then the lower number), found by a
census pass before curating. Bank select, data entry, (N)RPN and channel-mode numbers are never picked. Fewer than
10 controllers (or fewer moving ones than asked) is allowed and noted under ``warnings``.

CC census (``report["cc_census"]``): for the bass parts, every CC number seen, with the windows in which it moves
(a change after the window's opening snapshot, as ``static_cc`` counts) and its number of changes, over all windows
found; and the same for the other parts of the files (the other channels, in 4-bar spans of the whole file).
It names the controllers that move when every window is rejected as ``static_cc``.

The 80/10/10 split is by source file: files are ranked by ``sha256(seed:relative path)`` and cut
at the split fractions, so all windows of one song land in one split and the split does not depend
on the order files were found in.

Writes are atomic (temporary file, fsync, ``os.replace``). A rerun first deletes ``complete`` and
any stale ``*.tmp`` files, so an interrupted curation restarts cleanly from scratch. ``vaelib.data.dataset`` reads
the folder back.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from vaelib.atomic import atomic_write, atomic_write_text, fsync_dir
from vaelib.config import DataConfig, TokenizerConfig
from vaelib.controllers import name_of
from vaelib.data.midi import MidiReadError, other_parts_census, read_midi, select_controllers
from vaelib.data.dataset import COMPLETE, SPLITS
from vaelib.data.performance import Performance
from vaelib.data.synthetic import generate_one
from vaelib.data.tokenizer import TokenBudgetError, Tokenizer

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar")


# ---------------------------------------------------------------------------------------------- curate
AUTO_N = 10  # controllers ``cc="auto"`` picks, as in the paper
NOT_AUTOMATION = frozenset({0, 6, 32, 38, 96, 97, 98, 99, 100, 101, *range(120, 128)})  # never picked by auto


def parse_cc(spec) -> tuple[int, ...] | int | None:
    """``--cc`` value -> a tuple of CC numbers, the N of ``auto``/``auto:N`` (an int), or None (keep the config's).

    Raises ValueError on anything else (numbers outside 0..127, repeats, an empty list)."""
    if spec is None or (isinstance(spec, str) and spec.strip() in ("", "default")):
        return None
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text == "auto" or text.startswith("auto:"):
            n = int(text[5:]) if text.startswith("auto:") else AUTO_N
            if n < 1:
                raise ValueError(f"--cc {spec}: N must be at least 1")
            return n
        try:
            spec = [int(x) for x in text.replace(" ", "").split(",") if x]
        except ValueError:
            raise ValueError(f"--cc {spec!r}: give CC numbers like 74,71,1 or auto / auto:N") from None
    numbers = tuple(int(c) for c in spec)
    if not numbers or any(not 0 <= c <= 127 for c in numbers) or len(set(numbers)) != len(numbers):
        raise ValueError(f"--cc {spec!r}: distinct CC numbers in 0..127, at least one")
    return numbers


def pick_auto(bass_census: list[dict], n: int = AUTO_N) -> tuple[int, ...]:
    """The ``n`` most active controllers of a bass census (``report["cc_census"]["bass"]``), ascending."""
    ranked = [r for r in bass_census if r["windows"] > 0 and r["cc"] not in NOT_AUTOMATION]
    ranked.sort(key=lambda r: (-r["windows"], -r["changes"], r["cc"]))
    return tuple(sorted(r["cc"] for r in ranked[:n]))


def curate(source=None, out_dir="data", config: DataConfig | None = None, progress: bool = True,
           cc=None, **overrides) -> dict:
    """Curate ``source`` ("synthetic" or a MIDI folder) into ``out_dir``; returns the report dict.

    ``cc``: the controllers to model (module doc, "Controllers"): None, CC numbers, or ``"auto"``/``"auto:N"``.
    ``overrides`` replace DataConfig fields (``n_examples``, ``seed``, ``min_notes``, ...) or
    TokenizerConfig fields (``max_len``, ``thinning``) by name.
    """
    config = _with_overrides(config or DataConfig(), source, overrides)
    choice = parse_cc(cc)
    warnings_: list[str] = []
    chosen_by = "default" if choice is None else "list"
    if isinstance(choice, int):
        chosen_by = f"auto:{choice}"
        if config.source == "synthetic":
            warnings_.append("--cc auto on the synthetic corpus keeps the default controller table "
                             "(the generator writes motion for whatever numbers it is given)")
            choice = None
        else:
            census = _census(*_collect(config, progress), progress)
            picked = pick_auto(census["bass"], choice)
            if not picked:
                moving = ", ".join(f"CC{r['cc']}" for r in census["other_parts"][:5] if r["windows"]) or "none"
                raise ValueError(f"--cc auto: no controller moves on the bass parts of {config.source}; "
                                 f"on the other parts: {moving}. Choose controllers with --cc 74,71,...")
            if len(picked) < choice:
                warnings_.append(f"--cc auto:{choice}: only {len(picked)} controller(s) move on the bass parts; "
                                 f"modelling {len(picked)}")
            choice = picked
    if choice is not None:
        config = dataclasses.replace(config, tokenizer=dataclasses.replace(config.tokenizer, cc_numbers=choice))
    n_cc = len(config.tokenizer.cc_numbers)
    if n_cc < AUTO_N and not warnings_:
        warnings_.append(f"{n_cc} controller(s) modelled, fewer than the paper's {AUTO_N}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clear_stale(out)
    tok = Tokenizer(config.tokenizer)
    items, n_files_listed = _collect(config, progress)
    bass_moves: Counter = Counter()
    bass_changes: Counter = Counter()
    bass_seen: set[int] = set()
    other: dict[int, list[int]] = {}

    files_rejected: Counter = Counter()
    win_rejected: Counter = Counter()
    seen: set[bytes] = set()
    accepted: dict[str, list[tuple[np.ndarray, dict]]] = {}
    n_found = n_thinned = 0
    for rel, load in tqdm(items, desc="curate", unit="file", disable=not progress):
        try:
            windows, others = load()
        except Exception as e:  # noqa: BLE001 - any failure of one file is accounted, never fatal
            files_rejected[_reason(e)] += 1
            continue
        _count_bass(windows, bass_moves, bass_changes, bass_seen)
        for num, (w, c) in others.items():
            acc = other.setdefault(num, [0, 0])
            acc[0] += w
            acc[1] += c
        windows = [_select(w, config.tokenizer.cc_numbers) for w in windows]
        if not windows:
            files_rejected["no_windows"] += 1
            continue
        kept = []
        for w in windows:
            n_found += 1
            ids, why, factor, fitted = _filter(w, tok, config)
            if why is None:
                key = hashlib.sha1(ids.astype(np.int16).tobytes()).digest()
                why = "duplicate" if key in seen else None
                seen.add(key)
            if why is not None:
                win_rejected[why] += 1
                continue
            n_thinned += factor > 1
            kept.append((ids, _meta(fitted, rel, ids, factor)))
        if kept:
            accepted[rel] = kept
        else:
            files_rejected["no_usable_windows"] += 1

    split_of = split_sources(list(accepted), config.seed, config.split)
    by_split = {s: [x for rel in sorted(accepted) if split_of[rel] == s for x in accepted[rel]]
                for s in SPLITS}
    for s in SPLITS:
        write_split(out, s, [x[0] for x in by_split[s]], [x[1] for x in by_split[s]])
    atomic_write_text(out / "tokenizer.json", config.tokenizer.to_json())
    _write_json(out / "data_config.json", dataclasses.asdict(config))

    all_meta = [m for s in SPLITS for _, m in by_split[s]]
    report = {
        "source": str(config.source),
        "files": {"read": n_files_listed, "usable": len(accepted), "rejected": dict(sorted(files_rejected.items()))},
        "windows": {"found": n_found, "accepted": len(all_meta), "thinned": int(n_thinned),
                    "rejected": dict(sorted(win_rejected.items()))},
        "splits": {s: len(by_split[s]) for s in SPLITS},
        "split_files": {s: sum(v == s for v in split_of.values()) for s in SPLITS},
        "thresholds": {"min_notes": config.min_notes, "min_cc_changes": config.min_cc_changes,
                       "max_len": config.tokenizer.max_len, "thinning": config.tokenizer.thinning},
        "controllers": {"cc_numbers": list(config.tokenizer.cc_numbers),
                        "names": [name_of(c) for c in config.tokenizer.cc_numbers], "chosen_by": chosen_by},
        "cc_census": _census_report(bass_moves, bass_changes, bass_seen, other, n_found),
        "styles": dict(sorted(Counter(m["style"] for m in all_meta).items())),
        **_stats(all_meta, config.tokenizer),
    }
    report["warnings"] = warnings_ + [
        f"the {s} split is empty: {len(accepted)} usable source file(s) cannot fill 3 splits"
        for s in SPLITS if not report["splits"][s]]
    assert report["files"]["read"] == report["files"]["usable"] + sum(files_rejected.values())
    assert n_found == len(all_meta) + sum(win_rejected.values())
    _write_json(out / "report.json", report)
    _write_json(out / COMPLETE, {"files": sorted(p.name for p in out.iterdir() if p.name != COMPLETE)})
    return report


def _with_overrides(config: DataConfig, source, overrides: dict) -> DataConfig:
    data_fields = {f.name for f in dataclasses.fields(DataConfig)}
    tok_fields = {f.name for f in dataclasses.fields(TokenizerConfig)}
    d = {k: v for k, v in overrides.items() if k in data_fields and v is not None}
    t = {k: v for k, v in overrides.items() if k in tok_fields and v is not None}
    unknown = set(overrides) - data_fields - tok_fields
    if unknown:
        raise KeyError(f"unknown curation settings {sorted(unknown)}")
    if source is not None:
        d["source"] = str(source)
    return dataclasses.replace(config, **d, tokenizer=dataclasses.replace(config.tokenizer, **t))


def _collect(config: DataConfig, progress: bool):
    """[(relative source name, () -> (windows, other parts' census))], and the number of files read.

    MIDI windows are read with every CC number (the census needs them all; ``_select`` keeps the modelled
    ones, which is exactly what reading only those gives)."""
    tc = config.tokenizer
    if config.source == "synthetic":

        def one(i):
            return lambda: ([generate_one(i, config.seed, config.complexity, tc.n_bars, tc.steps_per_bar,
                                          tc.cc_numbers)], {})
        items = [(f"synthetic/{config.seed}-{i:06d}", one(i)) for i in range(config.n_examples)]
        return items, len(items)
    root = Path(config.source)
    if not root.is_dir():
        raise FileNotFoundError(f"source {root} is neither 'synthetic' nor a folder")

    paths = sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in MIDI_SUFFIXES))

    def one(p):
        def load():
            windows = read_midi(p, n_bars=tc.n_bars, steps_per_bar=tc.steps_per_bar, cc_numbers=ALL_CC)
            return windows, other_parts_census(p, n_bars=tc.n_bars)
        return load
    return [(p.relative_to(root).as_posix(), one(p)) for p in paths], len(paths)


ALL_CC = tuple(range(128))


def _select(w: Performance, cc_numbers) -> Performance:

    return select_controllers(w, cc_numbers)


def _count_bass(windows, moves: Counter, changes: Counter, seen: set) -> None:
    """Add the windows' per-controller motion to the bass census counters."""
    for w in windows:
        ch = w.cc_changes()
        n = ch[:, 1:].sum(1)
        for i in np.nonzero(ch.any(1))[0]:
            c = w.cc_numbers[i]
            seen.add(c)
            if n[i]:
                moves[c] += 1
                changes[c] += int(n[i])


def _census_rows(moves, changes, numbers) -> list[dict]:
    rows = [{"cc": int(c), "name": name_of(int(c)), "windows": int(moves.get(c, 0)), "changes": int(changes.get(c, 0))}
            for c in numbers]
    rows.sort(key=lambda r: (-r["windows"], -r["changes"], r["cc"]))
    return rows


def _census_report(moves, changes, seen, other, n_windows) -> dict:
    return {"bass": _census_rows(moves, changes, seen),
            "other_parts": _census_rows({k: v[0] for k, v in other.items()}, {k: v[1] for k, v in other.items()},
                                        other),
            "bass_windows": int(n_windows),
            "moving_on_bass": sorted(int(c) for c in moves if moves[c])}


def _census(items, n_files, progress: bool) -> dict:
    """The CC census of a source without curating it (the first pass of ``cc="auto"``)."""
    moves: Counter = Counter()
    changes: Counter = Counter()
    seen: set[int] = set()
    other: dict[int, list[int]] = {}
    n = 0
    for _, load in tqdm(items, desc="cc census", unit="file", disable=not progress):
        try:
            windows, others = load()
        except Exception:  # noqa: BLE001 - unreadable files are accounted by the curation pass
            continue
        n += len(windows)
        _count_bass(windows, moves, changes, seen)
        for num, (w, c) in others.items():
            acc = other.setdefault(num, [0, 0])
            acc[0] += w
            acc[1] += c
    return _census_report(moves, changes, seen, other, n)


def _reason(e: Exception) -> str:

    if isinstance(e, MidiReadError):
        return str(getattr(e, "reason", "") or "unreadable")
    return f"unexpected_error: {type(e).__name__}"


def _filter(w: Performance, tok: Tokenizer, config: DataConfig):
    """(ids or None, rejection reason or None, thinning factor, the window as stored)."""
    w = w.normalized()
    if w.n_notes < config.min_notes:
        return None, "too_few_notes", 1, w
    if int(w.cc_changes()[:, 1:].sum()) < config.min_cc_changes:
        return None, "static_cc", 1, w
    try:
        ids, fitted, factor = tok.fit_encode(w)
    except TokenBudgetError:
        return None, "over_budget", 1, w
    return ids, None, factor, fitted


def _meta(w: Performance, rel: str, ids: np.ndarray, factor: int) -> dict:
    return {"style": w.style or "midi", "source": rel, "window_source": w.source or rel,
            "tempo_bpm": float(w.tempo_bpm), "n_notes": int(w.n_notes), "n_tokens": int(len(ids)),
            "thinned": int(factor), "cc_changes": w.cc_changes()[:, 1:].sum(1).astype(int).tolist()}


def split_sources(sources: list[str], seed: int, fractions=(0.8, 0.1, 0.1)) -> dict[str, str]:
    """Assign each source file to a split: rank by ``sha256(f"{seed}:{source}")``, cut at the fractions.

    Rounding alone leaves a small folder without a test split (4 files at 80/10/10 -> 3/1/0), so each split with a
    non-zero fraction gets at least one file when there are enough files, taken from the largest split."""
    ranked = sorted(sources, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    n = len(ranked)
    frac = np.asarray(fractions, np.float64)
    counts = np.diff(np.concatenate([[0], np.rint(np.cumsum(frac) / frac.sum() * n).astype(int)]))
    if n >= int((frac > 0).sum()):
        for i in np.nonzero((frac > 0) & (counts == 0))[0]:
            counts[int(np.argmax(counts))] -= 1
            counts[i] += 1
    labels = np.repeat(np.arange(len(SPLITS)), counts)
    return {s: SPLITS[int(labels[k])] for k, s in enumerate(ranked)}


def _stats(meta: list[dict], tc: TokenizerConfig) -> dict:
    """Token-length, notes and CC-density statistics of the accepted windows."""
    def summary(x):
        x = np.asarray(x, float)
        if not len(x):
            return {}
        q = np.percentile(x, [5, 25, 50, 75, 95])
        return {"min": float(x.min()), "p5": float(q[0]), "p25": float(q[1]), "median": float(q[2]),
                "p75": float(q[3]), "p95": float(q[4]), "max": float(x.max()), "mean": float(x.mean())}
    n_tok = [m["n_tokens"] for m in meta]
    edges = np.linspace(0, tc.max_len, 17)
    hist = np.histogram(n_tok, bins=edges)[0].tolist() if n_tok else [0] * 16
    cc_changes = np.array([m["cc_changes"] for m in meta], float).reshape(-1, len(tc.cc_numbers))
    lanes = {name_of(c): {"mean_changes": float(cc_changes[:, i].mean()) if len(cc_changes) else 0.0,
                          "frac_windows_moving": float((cc_changes[:, i] > 0).mean()) if len(cc_changes) else 0.0}
             for i, c in enumerate(tc.cc_numbers)}
    return {"token_length": {**summary(n_tok), "hist_edges": edges.tolist(), "hist_counts": hist},
            "notes_per_window": summary([m["n_notes"] for m in meta]),
            "cc_density": {"changes_per_window": summary(cc_changes.sum(1)),
                           "changes_per_step": float(cc_changes.sum() / max(len(meta) * tc.n_steps, 1)),
                           "per_controller": lanes}}


# ---------------------------------------------------------------------------------------------- files
def _write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2))


def _clear_stale(out: Path) -> None:
    """Drop the completion marker first (the folder is now in progress), then leftovers of a crash."""
    (out / COMPLETE).unlink(missing_ok=True)
    fsync_dir(out)
    for p in out.glob("*.tmp*"):
        p.unlink(missing_ok=True)


def write_split(out: Path, split: str, ids: list[np.ndarray], meta: list[dict]) -> None:
    """Write one split's shard (``<split>.npz``: int16 ``ids`` + int64 ``offsets``) and meta, atomically."""
    lengths = np.array([len(x) for x in ids], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.concatenate(ids).astype(np.int16) if ids else np.zeros(0, np.int16)
    atomic_write(out / f"{split}.npz", lambda f: np.savez(f, ids=flat, offsets=offsets))
    _write_json(out / f"{split}.meta.json", meta)
