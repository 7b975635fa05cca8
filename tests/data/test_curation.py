"""Curation: exact accounting over a mixed folder, split by source, dedup, thinning counts, atomic restart."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import vaelib.data.curation as curation
from vaelib.config import DataConfig, TokenizerConfig, get_preset
from vaelib.data.curation import curate, split_sources
from vaelib.data.dataset import IncompleteDatasetError, load_meta, load_performances, load_split, load_tokenizer
from vaelib.data.midi import MidiReadError, read_midi
from vaelib.data.midi_write import write_midi
from vaelib.data.performance import Performance
from vaelib.data.synthetic import generate
from vaelib.data.tokenizer import Tokenizer

CFG = DataConfig(tokenizer=TokenizerConfig(max_len=1024))


def _reason_of(path):
    try:
        read_midi(path)
    except MidiReadError as e:
        return e.reason
    return None


@pytest.fixture(scope="module")
def midi_folder(tmp_path_factory):
    """A folder of 20 good files (some 8 bars = 2 windows, some nested), one exact copy (sorted last: the
    first file seen keeps a duplicated window), a note-only file,
    five broken ones, a text file named .mid and a non-MIDI file that is not looked at."""
    root = tmp_path_factory.mktemp("midi")
    good = generate(14, seed=11) + generate(6, seed=12, n_bars=8)
    for i, p in enumerate(good):
        write_midi(p, root / ("nested/deeper" if i % 5 == 0 else "") / f"good_{i:02d}.mid")
    (root / "zz_copy_of_good_01.mid").write_bytes((root / "good_01.mid").read_bytes())
    static = Performance.from_events(generate(1, seed=13)[0].notes, [])
    write_midi(static, root / "no_cc.mid")
    data = (root / "good_02.mid").read_bytes()
    (root / "truncated.mid").write_bytes(data[: len(data) // 2])
    (root / "header_only.mid").write_bytes(data[:14])
    (root / "zero.mid").write_bytes(b"")
    (root / "random.mid").write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    (root / "bad_chunk.mid").write_bytes(data[:18] + b"\xff\xff\xff\xff" + data[22:])
    (root / "text.mid").write_text("this is not a MIDI file, just words\n" * 20)
    (root / "readme.txt").write_text("not counted: not a MIDI suffix")
    return root, good


@pytest.fixture(scope="module")
def curated(midi_folder, tmp_path_factory):
    root, _ = midi_folder
    out = tmp_path_factory.mktemp("data")
    return out, curate(root, out, CFG, progress=False)


def test_every_file_is_accounted_for(midi_folder, curated):
    root, good = midi_folder
    out, rep = curated
    mids = sorted(p for p in root.rglob("*.mid"))
    assert rep["files"]["read"] == len(mids) == 28
    assert rep["files"]["read"] == rep["files"]["usable"] + sum(rep["files"]["rejected"].values())
    assert rep["files"]["usable"] == len(good)
    expected = Counter(r for r in map(_reason_of, mids) if r is not None)
    expected["no_usable_windows"] += 2  # the copy (all duplicates) and the file without CC motion
    assert rep["files"]["rejected"] == dict(expected)
    assert not any(k.startswith("unexpected_error") for k in rep["files"]["rejected"])
    assert _reason_of(root / "text.mid") in {"not_midi", "bad_header"}
    w = rep["windows"]
    assert w["found"] == w["accepted"] + sum(w["rejected"].values())
    assert w["rejected"]["duplicate"] == 1 and w["rejected"]["static_cc"] == 1
    assert w["accepted"] == 14 + 2 * 6 == sum(rep["splits"].values())
    assert json.loads((out / "report.json").read_text()) == rep


def test_windows_round_trip_through_the_shards(midi_folder, curated):
    root, good = midi_folder
    out, _ = curated
    tok = load_tokenizer(out)
    perfs = [p for s in ("train", "val", "test") for p in load_performances(out, s)]
    ids = [x for s in ("train", "val", "test") for x in load_split(out, s)]
    assert all(x[0] == 1 and x[-1] == 2 and x.dtype == np.int64 for x in ids)
    by_source = {m["source"]: m for s in ("train", "val", "test") for m in load_meta(out, s)}
    assert set(by_source) == {p.relative_to(root).as_posix() for p in root.rglob("good_*.mid")}
    # each window decodes to the MIDI reader's window, quantised as the tokenizer does
    first = read_midi(root / "good_03.mid")[0]
    mine = [p for p in perfs if p.source == "good_03.mid"]
    assert len(mine) == 1 and mine[0] == first.with_quantized_velocity()
    assert tok.vocab_size == 1603 and all(len(x) <= 1024 for x in ids)


def test_split_is_by_source_file(curated):
    out, rep = curated
    seen = {}
    for s in ("train", "val", "test"):
        for m in load_meta(out, s):
            assert seen.setdefault(m["source"], s) == s  # the two windows of an 8-bar file stay together
    assert sum(rep["split_files"].values()) == rep["files"]["usable"]
    names = [f"song_{i}.mid" for i in range(1000)]
    a, b = split_sources(names, seed=0), split_sources(names[::-1], seed=0)
    assert a == b  # independent of discovery order
    assert Counter(a.values()) == {"train": 800, "val": 100, "test": 100}
    assert split_sources(names, seed=1) != a
    # a small folder still gets a val and a test file (rounding alone gave 4 files 3/1/0)
    assert Counter(split_sources(names[:4], seed=0).values()) == {"train": 2, "val": 1, "test": 1}
    assert Counter(split_sources(names[:2], seed=0).values()) == {"train": 2}  # too few to split


def test_synthetic_curation_dedups_thins_and_is_deterministic(tmp_path):
    cfg = get_preset("tiny").data
    rep = curate("synthetic", tmp_path / "a", cfg, progress=False, n_examples=60, max_len=300)
    assert rep["files"] == {"read": 60, "usable": 60, "rejected": {}}
    assert rep["windows"]["thinned"] > 0 and rep["splits"] == {"train": 48, "val": 6, "test": 6}
    metas = [m for s in ("train", "val", "test") for m in load_meta(tmp_path / "a", s)]
    assert sum(m["thinned"] > 1 for m in metas) == rep["windows"]["thinned"]
    assert max(m["n_tokens"] for m in metas) <= 300 and rep["thresholds"]["max_len"] == 300
    rej = curate("synthetic", tmp_path / "b", cfg, progress=False, n_examples=60, max_len=300, thinning="reject")
    assert rej["windows"]["rejected"]["over_budget"] == rep["windows"]["thinned"]
    assert rej["files"]["rejected"]["no_usable_windows"] == rep["windows"]["thinned"]
    again = curate("synthetic", tmp_path / "c", cfg, progress=False, n_examples=60, max_len=300)
    assert again == rep
    for s in ("train", "val", "test"):
        assert (tmp_path / "a" / f"{s}.npz").read_bytes() == (tmp_path / "c" / f"{s}.npz").read_bytes()
    # the loaders give back the generated windows (where nothing was thinned)
    gen = {p.source.split("/")[-1]: p for p in generate(60, seed=cfg.seed)}
    tok = load_tokenizer(tmp_path / "a")  # max_len=300, as curated
    for p, m in zip(load_performances(tmp_path / "a", "val"), load_meta(tmp_path / "a", "val")):
        src = gen[m["source"].split("/")[-1]]
        assert p.style == src.style and p == tok.fit(src)[0].with_quantized_velocity()


def test_duplicates_are_removed_by_token_hash(tmp_path):
    root = tmp_path / "dups"
    p = generate(2, seed=3)
    for name, perf in [("a.mid", p[0]), ("b.mid", p[1]), ("c/a_again.mid", p[0])]:
        write_midi(perf, root / name)
    rep = curate(root, tmp_path / "out", CFG, progress=False)
    assert rep["windows"]["rejected"] == {"duplicate": 1}
    assert rep["files"] == {"read": 3, "usable": 2, "rejected": {"no_usable_windows": 1}}


def test_interrupted_curation_restarts_cleanly(tmp_path, monkeypatch):
    kw = dict(config=get_preset("tiny").data, progress=False, n_examples=30)
    out = tmp_path / "data"
    real = curation.write_split

    def crash_on_val(o, split, *a):
        if split == "val":
            raise KeyboardInterrupt("simulated kill")
        return real(o, split, *a)

    monkeypatch.setattr(curation, "write_split", crash_on_val)
    with pytest.raises(KeyboardInterrupt):
        curate("synthetic", out, **kw)
    (out / "val.npz.tmp").write_bytes(b"half a shard")  # what a kill mid-write leaves behind
    assert (out / "train.npz").exists() and not (out / "complete").exists()
    for load in (lambda: load_split(out, "train"), lambda: load_meta(out, "train"), lambda: load_tokenizer(out)):
        with pytest.raises(IncompleteDatasetError):
            load()
    monkeypatch.setattr(curation, "write_split", real)
    rep = curate("synthetic", out, **kw)
    fresh = curate("synthetic", tmp_path / "fresh", **kw)
    assert rep == fresh and (out / "complete").exists()
    assert not list(out.glob("*.tmp*"))
    for name in ("train.npz", "val.npz", "test.npz", "train.meta.json", "tokenizer.json", "data_config.json"):
        assert (out / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()


def test_unexpected_errors_are_counted_not_fatal(tmp_path, monkeypatch):
    root = tmp_path / "m"
    for i, p in enumerate(generate(3, seed=4)):
        write_midi(p, root / f"f{i}.mid")
    real = curation._collect

    def flaky(config, progress):
        items, n = real(config, progress)
        items[1] = (items[1][0], lambda: 1 / 0)  # a bug inside one file's reader
        return items, n

    monkeypatch.setattr(curation, "_collect", flaky)
    rep = curate(root, tmp_path / "out", CFG, progress=False)
    assert rep["files"] == {"read": 3, "usable": 2, "rejected": {"unexpected_error: ZeroDivisionError": 1}}


def test_music21_fixture_curates_into_windows_with_ccs(tmp_path):
    music21 = pytest.importorskip("music21")
    src = Path(music21.__path__[0]) / "midi" / "testPrimitive" / "test04.mid"
    if not src.exists():
        pytest.skip("music21 test04.mid not installed")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "test04.mid").write_bytes(src.read_bytes())
    # its CC motion is mostly CC 11 (expression), which is not monitored: with the default threshold the
    # bass windows are static and the file is accounted as rejected, never lost
    rep = curate(tmp_path / "in", tmp_path / "out", CFG, progress=False)
    assert rep["files"]["read"] == 1 == rep["files"]["usable"] + sum(rep["files"]["rejected"].values())
    loose = curate(tmp_path / "in", tmp_path / "out2", CFG, progress=False, min_cc_changes=0)
    assert loose["files"]["usable"] == 1 and loose["windows"]["accepted"] >= 10
    tok = load_tokenizer(tmp_path / "out2")
    n_cc_tokens = sum(int((tok.token_types(x) == 5).sum()) for s in ("train", "val", "test")
                      for x in load_split(tmp_path / "out2", s))
    assert n_cc_tokens > 0


def test_cli(tmp_path, capsys):
    from vaelib.data.__main__ import main

    rep = main(["--source", "synthetic", "--n-examples", "12", "--seed", "1", "--out", str(tmp_path), "--quiet",
                "--preset", "tiny"])
    assert rep["files"]["read"] == 12 and json.loads((tmp_path / "report.json").read_text()) == rep
    assert '"accepted"' in capsys.readouterr().out


def test_plots_of_a_curated_folder_and_a_window(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vaelib.controllers import CONTROLLERS
    from vaelib.evaluation.plots import plot_cc_lanes, plot_curation, plot_performance

    curate("synthetic", tmp_path, get_preset("tiny").data, progress=False, n_examples=15)
    perfs = load_performances(tmp_path, "train")
    fig = plot_performance(perfs[0])
    roll, lanes = fig.axes
    assert [t.get_text() for t in lanes.get_yticklabels()] == [c.name for c in CONTROLLERS][::-1]
    assert perfs[0].style in roll.get_title()
    fig2 = plot_cc_lanes(perfs[:2], ["a", "b"], names=["cutoff", "volume"])
    assert [ax.get_ylabel() for ax in fig2.axes if ax.get_visible()] == ["cutoff", "volume"]
    fig3 = plot_curation(tmp_path)
    titles = " ".join(ax.get_title() for ax in fig3.axes)
    assert "token length" in titles and "CC activity" in titles and "style mix" in titles
    plt.close("all")
