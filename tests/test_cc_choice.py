"""Choosing the controllers (issue 20): the CC census, ``--cc`` / ``--cc auto``, the choice travelling through
training, generation, MIDI export and the built-in synth's CC map, and the README's curate -> train road."""
from __future__ import annotations

import dataclasses
import json
import re
import shlex
import warnings
from pathlib import Path

import mido
import numpy as np
import pytest

from vaelib.data import __main__ as curate_cli
from vaelib.model import generation as generate_cli
from vaelib.synth import __main__ as render_cli
from vaelib.training import fit as train_cli
from vaelib.config import get_preset
from vaelib.controllers import DEFAULT_CC_MAP, DEFAULT_CC_NUMBERS, cc_map_json, load_cc_map
from vaelib.data.curation import AUTO_N, curate, parse_cc, pick_auto
from vaelib.data.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parent.parent
BASS_CC = (11, 16, 17, 91)  # outside the default table but for 11
PAD_CC = (1, 10)  # moving on another part only
N_FILES, N_BARS = 6, 16  # 4 windows per file


def make_folder(root: Path, numbers=BASS_CC, n_files=N_FILES, n_bars=N_BARS) -> Path:
    """Type-1 files written with mido: a bass track (named "Bass", program 38, channel 1) playing 1/8 notes and
    automating ``numbers`` (lane k changes every k+1 sixteenths), and a pad on channel 2 moving CC 1 and 10."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    tpq = 96
    step = tpq // 4
    for f in range(n_files):
        ev = []
        for s in range(n_bars * 16):
            t = s * step
            if s % 2 == 0:
                p = int(rng.choice([36, 38, 41, 43]))
                ev.append((t, 1, mido.Message("note_on", channel=0, note=p, velocity=100)))
                ev.append((t + step, 0, mido.Message("note_off", channel=0, note=p, velocity=0)))
            for k, n in enumerate(numbers):
                if s % (k + 1) == 0:
                    ev.append((t, 0, mido.Message("control_change", channel=0, control=n,
                                                  value=int(64 + 60 * np.sin(s / (3 + k) + f)))))
        ev.sort(key=lambda e: (e[0], e[1]))
        bass = mido.MidiTrack([mido.MetaMessage("track_name", name="Bass"),
                               mido.Message("program_change", channel=0, program=38)])
        now = 0
        for t, _, m in ev:
            bass.append(m.copy(time=t - now))
            now = t
        pad = mido.MidiTrack([mido.Message("program_change", channel=1, program=89)])
        for s in range(n_bars * 4):
            pad.append(mido.Message("note_on", channel=1, note=72, velocity=80, time=0 if s == 0 else tpq // 2))
            pad += [mido.Message("control_change", channel=1, control=PAD_CC[0], value=(s * 13) % 128),
                    mido.Message("control_change", channel=1, control=PAD_CC[1], value=(s * 29) % 128)]
            pad.append(mido.Message("note_off", channel=1, note=72, velocity=0, time=tpq // 2))
        mf = mido.MidiFile(type=1, ticks_per_beat=tpq)
        mf.tracks += [bass, pad]
        mf.save(root / f"song{f}.mid")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("cc") / "midi")


@pytest.fixture(scope="module")
def auto_data(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("cc") / "data"
    return out, curate_cli.main(["--source", str(folder), "--out", str(out), "--preset", "tiny", "--cc", "auto",
                                 "--quiet"])


def census_numbers(rows):
    return {r["cc"] for r in rows if r["windows"]}


# ------------------------------------------------------------------------------------------- choice
def test_parse_cc():
    assert parse_cc(None) is None and parse_cc("") is None
    assert parse_cc("auto") == AUTO_N == 10 and parse_cc("auto:12") == 12
    assert parse_cc("74, 71,16") == (74, 71, 16) and parse_cc([5, 1]) == (5, 1)
    for bad in ("74,74", "128", "x", "auto:0", []):
        with pytest.raises(ValueError):
            parse_cc(bad)


def test_pick_auto_ranks_by_windows_then_changes_and_skips_non_automation():
    rows = [{"cc": 7, "windows": 3, "changes": 9}, {"cc": 16, "windows": 9, "changes": 10},
            {"cc": 0, "windows": 50, "changes": 50}, {"cc": 17, "windows": 9, "changes": 40},
            {"cc": 121, "windows": 40, "changes": 40}, {"cc": 91, "windows": 0, "changes": 0}]
    assert pick_auto(rows, 2) == (16, 17)  # ascending; bank select and reset-all never picked
    assert pick_auto(rows, 10) == (7, 16, 17)  # only moving ones


def test_auto_records_the_bass_controllers_and_the_vocabulary_follows(auto_data):
    out, rep = auto_data
    tok = json.loads((out / "tokenizer.json").read_text())
    assert tuple(tok["cc_numbers"]) == BASS_CC
    assert rep["controllers"]["cc_numbers"] == list(BASS_CC) and rep["controllers"]["chosen_by"] == "auto:10"
    assert rep["files"] == {"read": N_FILES, "usable": N_FILES, "rejected": {}}
    assert rep["windows"]["found"] == N_FILES * N_BARS // 4 == rep["windows"]["accepted"]
    assert any("only 4 controller(s) move" in w for w in rep["warnings"])
    # census: the bass parts move exactly BASS_CC in every window; the pad's CCs are on the other parts only
    cen = rep["cc_census"]
    assert census_numbers(cen["bass"]) == set(BASS_CC) == set(cen["moving_on_bass"])
    assert all(r["windows"] == rep["windows"]["found"] for r in cen["bass"])
    assert census_numbers(cen["other_parts"]) == set(PAD_CC)
    # the vocabulary: 4 CC lanes of 128 values after the fixed part
    assert Tokenizer(get_preset("tiny").data.tokenizer).vocab_size - Tokenizer(
        dataclasses.replace(get_preset("tiny").data.tokenizer, cc_numbers=BASS_CC)).vocab_size == 6 * 128


def test_cli_prints_the_census(folder, tmp_path, capsys):
    curate_cli.main(["--source", str(folder), "--out", str(tmp_path / "d"), "--preset", "tiny", "--cc", "16,17",
                     "--quiet"])
    out = capsys.readouterr()
    assert "moving CCs on the bass parts: CC11 (volume)" in out.out
    assert "moving CCs on the other parts: CC1" in out.out and "CC10" in out.out
    assert "modelled controllers (list): CC16 cc16, CC17 cc17" in out.out
    assert "fewer than the paper's 10" in out.err
    assert json.loads((tmp_path / "d" / "tokenizer.json").read_text())["cc_numbers"] == [16, 17]


def test_default_set_accounts_for_everything_and_the_census_names_the_movers(folder, tmp_path):
    rep = curate(folder, tmp_path / "d", get_preset("tiny").data, progress=False)
    assert rep["controllers"]["cc_numbers"] == list(DEFAULT_CC_NUMBERS)
    assert rep["files"]["read"] == N_FILES == rep["files"]["usable"] + sum(rep["files"]["rejected"].values())
    w = rep["windows"]
    assert w["found"] == N_FILES * N_BARS // 4 == w["accepted"] + sum(w["rejected"].values())
    assert set(rep["cc_census"]["moving_on_bass"]) == set(BASS_CC)
    assert census_numbers(rep["cc_census"]["other_parts"]) == set(PAD_CC)
    # without CC11 in the set, nothing modelled moves: every window is static, and the census still says what moves
    strict = curate(folder, tmp_path / "s", get_preset("tiny").data, progress=False, cc=(74, 71))
    assert strict["windows"]["rejected"] == {"static_cc": strict["windows"]["found"]}
    assert set(strict["cc_census"]["moving_on_bass"]) == set(BASS_CC)


def test_auto_without_bass_motion_names_the_other_parts(tmp_path):
    folder = make_folder(tmp_path / "m", numbers=(), n_files=2, n_bars=4)
    with pytest.raises(ValueError, match="no controller moves on the bass parts.*CC1"):
        curate(folder, tmp_path / "d", get_preset("tiny").data, progress=False, cc="auto")


# ------------------------------------------------------------------------------------------- the road
def test_tiny_training_then_generate_writes_those_numbers_and_the_synth_renders_them(auto_data, tmp_path):
    data, _ = auto_data
    run = tmp_path / "run"
    train_cli.main(["--preset", "tiny", "--latent-dim", "16", "--data", str(data), "--run-dir", str(run),
                    "--max-steps", "3"])
    cfg = json.loads((run / "config.json").read_text())
    assert tuple(cfg["data"]["tokenizer"]["cc_numbers"]) == BASS_CC  # the checkpoint carries the data's choice
    assert cfg["model"]["vocab_size"] == Tokenizer(dataclasses.replace(get_preset("tiny").data.tokenizer,
                                                                       cc_numbers=BASS_CC)).vocab_size
    cc_map = tmp_path / "map.json"
    cc_map.write_text(json.dumps({"cc_map": {"11": "volume", "16": "cutoff", "17": "resonance", "91": "drive"}}))
    gen = tmp_path / "gen"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every CC is mapped: no "ignored" warning
        generate_cli.main(["--run-dir", str(run), "--n", "4", "--out", str(gen), "--cc-map", str(cc_map),
                           "--sample-rate", "22050"])
    mids = sorted(gen.glob("*.mid"))
    assert len(mids) == 4 and all(m.with_suffix(".wav").exists() for m in mids)
    used = set()
    for m in mids:
        msgs = [x for t in mido.MidiFile(m).tracks for x in t]
        used |= {x.control for x in msgs if x.type == "control_change"}
        text = [x.text for x in msgs if x.type == "text"]
        assert text == ["vaelib controllers: CC11=volume CC16=cutoff CC17=resonance CC91=drive"]
        sheet = json.loads(m.with_suffix(".json").read_text())
        assert [(c["cc"], c["synth_param"]) for c in sheet["controllers"]] == [
            (11, "volume"), (16, "cutoff"), (17, "resonance"), (91, "drive")]
    assert used and used <= set(BASS_CC)
    # the render CLI reads every CC the file uses; with the map each drives its parameter
    loaded = load_cc_map(cc_map)
    mapped = render_cli.render_midi(mids[0], cc_map=loaded)
    with pytest.warns(UserWarning, match="ignores CC"):
        from vaelib.synth import controls
        controls._WARNED.clear()
        unmapped = render_cli.render_midi(mids[0])  # the default map names only CC11 of these
    assert mapped.shape == unmapped.shape and np.isfinite(mapped).all()
    assert render_cli.main([str(mids[0]), str(tmp_path / "x.wav"), "--cc-map", str(cc_map)]) == 0


def readme_commands(section: str = "## Curate your own MIDI folder") -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    block = text[text.index(section):]
    block = block[block.index("```bash") + 7:]
    block = block[:block.index("```")]
    return [shlex.split(line.split("#")[0]) for line in block.splitlines() if line.startswith(".venv/bin/vaelib-")]


def test_readme_curate_then_train_commands_work_as_written(folder, tmp_path):
    cmds = readme_commands()
    scripts = [Path(c[0]).name for c in cmds]
    assert scripts[:2] == ["vaelib-curate", "vaelib-train"]
    sub = {"path/to/midi": str(folder), "data/mine": str(tmp_path / "data"), "runs/mine": str(tmp_path / "run")}
    curate_args, train_args = ([sub.get(a, a) for a in c[1:]] for c in cmds[:2])
    rep = curate_cli.main(curate_args + ["--quiet"])
    assert rep["windows"]["accepted"] > 0
    train_cli.main(train_args + ["--max-steps", "1"])  # the small preset, one step: it fits the data
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "finished"


def test_data_curated_for_a_larger_budget_gets_the_exact_fix(folder, tmp_path):
    data = tmp_path / "paper"
    curate(folder, data, get_preset("paper").data, progress=False, cc="auto")
    config = get_preset("tiny", latent_dim=8)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, max_len=128))
    with pytest.raises(ValueError, match=re.escape(f"--source {folder} --out {data} --preset tiny (or --max-len 128)")):
        train_cli.fit(config, data, tmp_path / "run", max_steps=1)


def test_example_map_file_is_the_default_map(tmp_path):
    assert (ROOT / "examples" / "cc_map.json").read_text() == cc_map_json()
    assert load_cc_map(ROOT / "examples" / "cc_map.json") == DEFAULT_CC_MAP
    assert DEFAULT_CC_MAP[11] == "volume" and 7 not in DEFAULT_CC_MAP
    with pytest.raises(ValueError, match="built-in synth's parameters"):
        (tmp_path / "m.json").write_text(json.dumps({"16": "wobble"}))
        load_cc_map(tmp_path / "m.json")
    assert load_cc_map(tmp_path / "m.json", builtin=False) == {16: "wobble"}  # a plugin's own parameter name


def test_latent_plots_show_the_modelled_lanes_when_the_default_names_are_absent():
    import matplotlib

    matplotlib.use("Agg")
    from vaelib.evaluation import latent
    from vaelib.data.performance import Performance

    p = Performance.from_events([(0, 4, 36, 100)], [(0, 0, 10), (5, 1, 90)], n_steps=32, cc_numbers=BASS_CC[1:])
    fig = latent.plot_neighbours([p], [p], np.array([[0]]), np.array([[0.0]]))
    assert [ax.get_title().split(": ")[-1].split(",")[0] for ax in fig.axes] == ["cc16", "cc17", "cc91"]
    strip = latent.plot_strip([p, p])
    assert [t.get_text() for t in strip.axes[-1].get_legend().get_texts()] == ["cc16", "cc17", "cc91"]
