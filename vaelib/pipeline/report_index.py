"""The report's front matter: ``index.html`` (status, configuration, Table 1, figures, links) and ``run_record.json``.

Everything here reads what the pipeline's notebooks left in the output folder; links are relative, so the folder can
be moved or committed (``results/reference/``) and still render.
"""
from __future__ import annotations

import csv
import html
import json
import subprocess
import sys
from pathlib import Path

from vaelib.evaluation.table_format import PAIRED_NOTE
from vaelib.runs import parse_run_name
from vaelib.slots import cpu_threads
from vaelib.evaluation import table_format as tf
from vaelib.pipeline.report_check import check_report

TABLE_FILES = ("table1.csv", "table1.md", "table1.tex", "table1_paired.csv", "table1_paired.md", "table1_runs.csv")
FIGURE_SUFFIXES = (".png", ".svg", ".jpg")
STATUS_COLOURS = {"ok": "#1a7f37", "skipped-unchanged": "#57606a", "FAILED": "#cf222e", "blocked": "#9a6700",
                  "missing": "#9a6700"}

CSS = """body{font-family:system-ui,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:.3em .5em;text-align:left;
vertical-align:top}th{background:#f6f8fa}pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:85%}
table.t1{font-size:13px}table.t1 td{white-space:nowrap}table.t1 small{color:#57606a}
caption{caption-side:bottom;text-align:left;font-size:85%;color:#57606a;padding-top:.4em;max-width:1150px}
figure{display:inline-block;vertical-align:top;margin:.5em;max-width:48%}figure.wide{max-width:100%}
figure img{max-width:100%}figcaption{font-size:85%}.note{font-size:85%;color:#57606a}
audio{width:190px;height:32px}.grid td{padding:.1em}.status{font-weight:bold}
.simulated{border:2px dashed #cf222e;padding:.2em 1em;margin-top:2em}"""

# figure stem -> one sentence saying what to look at
FIGURE_CAPTIONS = {
    "reconstruction": "Per-piece reconstruction metrics by latent size: the model reconstructs better than chance "
                      "only where its point and CI clear the unconditional baseline's.",
    "latent": "Does each run use z? CE, KL, active units and usage gap with 95 % CIs; red bars are runs flagged "
              "collapsed (usage gap CI not above the dashed threshold).",
    "latent_pca_style": "Test-set posterior means on their first two principal axes, by style: separate clusters "
                        "mean z encodes the style; black crosses are prior samples.",
    "latent_pca_attributes": "The same projection coloured by note density, register and wobble rate: a smooth "
                             "colour gradient means the attribute varies along the latent space.",
    "latent_variance_kl": "How many principal axes carry the variance of μ (left), and the KL of each latent "
                          "dimension (right): dimensions below the dashed line carry no information.",
    "latent_neighbours": "Prior samples' CC curves (solid) beside their nearest training window (dashed): a "
                         "novelty near 0 would mean the model copies its training data.",
    "latent_interpolation": "A spherical interpolation between two test windows, decoded greedily: look for "
                            "gradual change in notes and CC lanes rather than jumps.",
    "explorer_grid": "Decodes of the mean μ moved along each direction (rows) by −2…+2 (columns): a direction "
                     "that matters changes the piano roll or the cutoff lane along its row.",
    "SIMULATED_listening_ratings": "SIMULATED ratings, made up to exercise the analysis (not data): per-scale "
                                   "means with 95 % CIs by condition.",
}
SIMULATED = "SIMULATED"


def collect_artifacts(out) -> dict:
    """What the index shows, as paths relative to ``out``: ``tables``, ``figures`` (``figures/``, real results
    first, SIMULATED last), ``run_figures`` ({run: [paths]}) and ``audio`` ({run: manifest paths})."""

    out = Path(out)
    tables = [t for t in TABLE_FILES if (out / t).is_file()]

    def pictures(folder: Path) -> list[str]:
        found = sorted(p.relative_to(out).as_posix() for p in folder.rglob("*")
                       if p.suffix.lower() in FIGURE_SUFFIXES and p.is_file()) if folder.is_dir() else []
        order = list(FIGURE_CAPTIONS)  # the reading order: Table 1's figures, then latent space, explorer
        return sorted(found, key=lambda f: (SIMULATED in Path(f).name,
                                            order.index(Path(f).stem) if Path(f).stem in order else len(order), f))

    runs = sorted((p for p in out.iterdir() if p.is_dir() and parse_run_name(p.name)),
                  key=lambda p: (parse_run_name(p.name)[2], parse_run_name(p.name)[0], p.name)) if out.is_dir() else []
    run_figures = {r.name: pictures(r / "figures") for r in runs if pictures(r / "figures")}
    audio = {r.name: [m.relative_to(out).as_posix() for m in (r / "audio" / "audio.json", r / "audio" / "explorer.json")
                      if m.is_file()] for r in runs}
    return dict(tables=tables, figures=pictures(out / "figures"), run_figures=run_figures,
                audio={k: v for k, v in audio.items() if v})


def markdown_table_to_html(text: str) -> str | None:
    """A Markdown pipe table (header, ``---`` rule, rows) as an HTML table; None when ``text`` is not one.
    Lines after the table (a legend) are left out."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    lines = lines[:next((i for i, ln in enumerate(lines) if not ln.startswith("|")), len(lines))]
    if len(lines) < 2 or not set(lines[1]) <= set("|:- "):
        return None

    def cells(line: str) -> list[str]:
        return [html.escape(c.strip()) for c in line.strip("|").split("|")]

    head = "".join(f"<th>{c}</th>" for c in cells(lines[0]))
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells(ln)) + "</tr>" for ln in lines[2:])
    return f"<table><tr>{head}</tr>{body}</table>"


def render_table(out, stem: str = "table1") -> str:
    """``<stem>.md`` as an HTML table, else ``<stem>.csv`` through pandas, else a note."""
    out = Path(out)
    if (out / f"{stem}.md").is_file():
        text = (out / f"{stem}.md").read_text(encoding="utf-8")
        return markdown_table_to_html(text) or f"<pre>{html.escape(text)}</pre>"
    if (out / f"{stem}.csv").is_file():
        try:
            import pandas as pd

            return pd.read_csv(out / f"{stem}.csv").to_html(index=False, float_format=lambda x: f"{x:.4g}",
                                                            border=0, na_rep="")
        except Exception as e:  # a malformed CSV should not cost the whole index
            return f"<p>{stem}.csv could not be read: {html.escape(repr(e))}</p>"
    return f"<p><em>No {stem} yet (written by 03_evaluate).</em></p>"


def render_table1(out) -> str:
    """Table 1 from ``table1.csv`` (written by ``vaelib.evaluation.table``) for a 1,200 px page: value over its 95 % CI in
    each cell, one number of decimals per column, counts without CI, short objective labels with a legend, and a
    caption. Falls back to ``render_table`` for a CSV without Table 1's columns."""

    path = Path(out) / "table1.csv"
    try:
        import pandas as pd

        df = pd.read_csv(path)
    except Exception:
        return render_table(out)
    if not {"latent_dim", "objective", "control", "collapsed"} <= set(df.columns):
        return render_table(out)
    cols = [(c, h, unit) for c, h, unit in tf.COLUMNS if c in df and not df[c].isna().all()]
    seeds = "n_seeds" in df and df["n_seeds"].max() > 1
    head = ("<tr><th>D</th><th>Objective</th>" + ("<th>Seeds</th>" if seeds else "")
            + "".join(f'<th title="{html.escape(unit)}">{html.escape(h)}<br><small>{html.escape(unit)}</small></th>'
                      for c, h, unit in cols) + "<th>Verdict</th></tr>")
    dec = {c: tf.decimals(df[c], df.get(f"{c}_ci_lo", ()), df.get(f"{c}_ci_hi", ())) for c, _, _ in cols}
    rows = []
    for _, r in df.iterrows():
        cells = [f"<td><b>{int(r['latent_dim'])}</b></td>",
                 f"<td>{html.escape(tf.objective_short(r['objective'], bool(r['control'])))}</td>"]
        if seeds:
            cells.append(f"<td>{int(r['n_seeds'])}</td>")
        for c, _, _ in cols:
            if c in tf.COUNTS or f"{c}_ci_lo" not in df:
                cells.append(f"<td>{tf.fmt(r[c], 0 if c in tf.COUNTS else dec[c])}</td>")
            else:
                ci = f"[{tf.fmt(r[f'{c}_ci_lo'], dec[c])}, {tf.fmt(r[f'{c}_ci_hi'], dec[c])}]"
                cells.append(f"<td>{tf.fmt(r[c], dec[c])}<br><small>{ci}</small></td>")
        collapsed = bool(r["collapsed"]) if not isinstance(r["collapsed"], str) else r["collapsed"] == "True"
        colour = STATUS_COLOURS["FAILED" if collapsed else "ok"]
        cells.append(f'<td class="status" style="color:{colour}">{"collapsed" if collapsed else "uses z"}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    legend = "<br>".join(html.escape(x) for x in tf.legend(df["objective"], df["control"]))
    n_seeds = int(df["n_seeds"].max()) if "n_seeds" in df else 1
    caption = html.escape(tf.caption(df.get("n_examples", []), n_seeds, df.get("cc_value", [])))
    return (f'<table class="t1"><caption><b>Table 1.</b> {caption}<br><b>Objective labels:</b> {legend}</caption>'
            f"{head}{''.join(rows)}</table>")


def render_verdicts(out) -> str:
    """One line per run folder from ``table1_runs.csv`` (written by ``vaelib.evaluation.table``): does its decoder use z?"""
    path = Path(out) / "table1_runs.csv"
    if not path.is_file():
        return ""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error) as e:  # a malformed file should not cost the whole index
        return f"<p>table1_runs.csv could not be read: {html.escape(repr(e))}</p>"
    items = "".join(
        f'<li><b>{html.escape(r.get("run", ""))}</b>: '
        f'<span class="status" style="color:{STATUS_COLOURS["FAILED" if r.get("collapsed") == "True" else "ok"]}">'
        f'{html.escape(r.get("verdict", ""))}</span></li>' for r in rows)
    return f"<h3>Does each run use z?</h3><ul>{items}</ul>" if items else ""


def render_paired(out) -> str:

    return (f"<details><summary>Paired tests between latent sizes</summary><p>{html.escape(PAIRED_NOTE)}</p>"
            f"{render_table(out, 'table1_paired')}</details>")


def _link(out: Path, rel: str, text: str) -> str:
    """A link to ``rel`` when that file exists under ``out``; "" otherwise."""
    return f'<a href="{html.escape(rel)}">{html.escape(text)}</a>' if rel and (out / rel).is_file() else ""


def _step_rows(steps: list[dict], out: Path) -> str:
    rows = []
    for s in steps:
        colour = STATUS_COLOURS.get(s["status"], "#1f2328")
        links = " · ".join(x for x in (_link(out, s.get("html", ""), "report"), _link(out, s.get("ipynb", ""), "ipynb"))
                           if x)
        error = f"<br><small>{html.escape(s['error'][:500])}</small>" if s.get("error") else ""
        rows.append(f'<tr><td>{html.escape(s["name"])}</td><td class="status" style="color:{colour}">'
                    f'{html.escape(s["status"])}</td><td>{s.get("wall_sec", 0):.1f}</td>'
                    f'<td>{links}</td><td>{html.escape(s.get("device", ""))}{error}</td></tr>')
    return ("<table><tr><th>step</th><th>status</th><th>wall (s)</th><th>output</th><th>device / error</th></tr>"
            + "".join(rows) + "</table>")


def _figure(f: str, wide: bool = False) -> str:
    stem = Path(f).stem
    text = FIGURE_CAPTIONS.get(stem, stem.replace("_", " "))
    return (f'<figure{" class=wide" if wide else ""}><a href="{html.escape(f)}"><img src="{html.escape(f)}" '
            f'alt="{html.escape(stem)}" loading="lazy"></a><figcaption><b>{html.escape(stem.replace("_", " "))}.'
            f"</b> {html.escape(text)}</figcaption></figure>")


def _player(out: Path, rel: str) -> str:
    return (f'<audio controls preload="none" src="{html.escape(rel)}"></audio>' if (out / rel).is_file()
            else "<em>missing</em>")


def render_audio(out: Path, audio: dict) -> str:
    """The listening section: per run, original vs reconstruction pairs and prior samples (``audio.json``), and
    the explorer's variation grid (``explorer.json``); players point at the Ogg files beside the page."""
    parts = []
    for run, manifests in audio.items():
        for m in manifests:
            try:
                man = json.loads((out / m).read_text())
            except (OSError, ValueError):
                continue
            base = Path(m).parent.parent.as_posix()  # the run folder, relative to out
            if Path(m).name == "audio.json":
                rows = "".join(
                    f"<tr><td>{p['example'] + 1}</td><td>{html.escape(str(p.get('style', '')))}</td>"
                    f"<td>{_player(out, base + '/' + p['original'])}</td>"
                    f"<td>{_player(out, base + '/' + p['reconstruction'])}</td>"
                    f"<td>{p['notes'][0]} / {p['notes'][1]}</td></tr>" for p in man.get("pairs", []))
                prior = " ".join(_player(out, base + "/" + p["file"]) for p in man.get("prior", []))
                learned = " ".join(_player(out, base + "/" + p["file"]) for p in man.get("learned_prior", []))
                n_samples = len(man.get("prior", [])) + len(man.get("learned_prior", []))
                spread = man.get("learned_prior_sigma_scale", 1.0)  # the share of each window's spread fitted to
                fitted = "fitted to the training posteriors" + (f", at {spread:g} of each window's spread"
                                                                if spread != 1 else "")
                parts.append(
                    f"<h3>{html.escape(run)}</h3><details{' open' if not parts else ''}><summary>"
                    f"{len(man.get('pairs', []))} test pieces: original vs reconstruction; {n_samples} prior samples"
                    "</summary><table><tr><th>#</th><th>style</th><th>original</th><th>reconstruction (greedy decode"
                    f" of μ)</th><th>notes (orig. / rec.)</th></tr>{rows}</table>"
                    f"<p>Prior samples z ~ N(0, I), decoded at temperature 1:</p><p>{prior}</p>"
                    + (f"<p>Prior samples with z from the learned slot prior ({fitted}; "
                       f"<code>vaelib-generate --learned-prior</code>; z drawn at temperature "
                       f"{man.get('learned_prior_temperature', 1.0):g}), decoded at temperature 1:</p><p>{learned}</p>"
                       if learned else "") + "</details>")
            else:
                head = "".join(f"<th>{a:+g}</th>" for a in man.get("amounts", []))
                rows = "".join(f"<tr><th>{html.escape(d)}</th>"
                               + "".join(f"<td>{_player(out, base + '/' + c)}</td>" for c in cells) + "</tr>"
                               for d, cells in zip(man.get("directions", []), man.get("cells", [])))
                parts.append(f"<h3>{html.escape(run)}: explorer variation grid</h3><details><summary>"
                             "the mean μ moved along each direction (rows) by the amount in each column</summary>"
                             f'<table class="grid"><tr><th>direction</th>{head}</tr>{rows}</table></details>')
    if not parts:
        return ""
    return ("<h2>Listen</h2><p class=note>Clips rendered with the built-in VA bass voice at 22.05 kHz (Ogg Vorbis "
            "files beside this page; they play offline).</p>" + "".join(parts))


def _config_rows(cfg: dict, summary: dict) -> str:
    labels = {"latent_dims": "latent sizes D", "n_examples": "corpus windows", "epochs": "epochs (main runs)",
              "control": "control preset", "control_epochs": "epochs (control)", "limit": "test pieces scored",
              "max_steps": "step cap"}
    rows = "".join(f"<tr><th>{html.escape(labels.get(k, str(k)))}</th>"
                   f"<td>{html.escape(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
                   for k, v in cfg.items() if v is not None)
    return rows + (f"<tr><th>started</th><td>{html.escape(str(summary.get('started', '')))}</td></tr>"
                   f"<tr><th>wall (s)</th><td>{summary.get('wall_sec', 0):.1f}</td></tr>")


def write_index(out, summary: dict) -> Path:
    """Write ``out/index.html`` from the pipeline summary (see ``vaelib.pipeline.run_pipeline``). Every link and
    player points at a file under ``out`` that exists when the page is written."""
    out = Path(out)
    summary = {**summary, **collect_artifacts(out)}
    cfg = dict(summary.get("config", {}))
    preset_cfg = cfg.pop("preset_config", None)
    failed = [s["name"] for s in summary["steps"] if s["status"] not in ("ok", "skipped-unchanged")]
    verdict = (f'<p class="status" style="color:{STATUS_COLOURS["FAILED"]}">Not complete: '
               f'{html.escape(", ".join(failed))}</p>' if failed else
               f'<p class="status" style="color:{STATUS_COLOURS["ok"]}">All steps succeeded.</p>')
    tables = " · ".join(f'<a href="{t}">{t}</a>' for t in summary.get("tables", []))
    real = [f for f in summary.get("figures", []) if SIMULATED not in Path(f).name]
    simulated = [f for f in summary.get("figures", []) if SIMULATED in Path(f).name]
    figures = "".join(_figure(f, wide=True) for f in real) or "<p><em>No figures yet.</em></p>"
    run_figs = "".join(
        f"<details><summary>{html.escape(run)}: {len(fs)} figures ("
        + ", ".join(f'<a href="{html.escape(f)}">{html.escape(Path(f).stem.replace("_", " "))}</a>' for f in fs)
        + f")</summary>{''.join(_figure(f) for f in fs)}</details>"
        for run, fs in summary.get("run_figures", {}).items())
    sim = ("<div class=simulated><h2>SIMULATED listening-test analysis (not data)</h2><p>The listening-test pack "
           "is real; these ratings are made up by <code>listening.simulate_ratings</code> only to exercise the "
           "analysis.</p>" + "".join(_figure(f) for f in simulated) + "</div>") if simulated else ""
    paired = render_paired(out) if any(t.startswith("table1_paired") for t in summary.get("tables", [])) else ""
    preset = (f"<details><summary>resolved preset configuration</summary><pre>"
              f"{html.escape(json.dumps(preset_cfg, indent=2))}</pre></details>" if preset_cfg else "")
    records = " · ".join(x for x in (_link(out, "pipeline.json", "pipeline.json"),
                                     _link(out, "run_record.json", "run_record.json")) if x)
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>vaelib report: {html.escape(str(cfg.get('preset', '')))}</title>
<style>{CSS}</style></head><body>
<h1>vaelib report{': ' + html.escape(str(cfg['preset'])) if 'preset' in cfg else ''}</h1>
{verdict}
<h2>Table 1</h2>{render_table1(out) if (out / "table1.csv").is_file() else render_table(out)}{render_verdicts(out)}
<p>Files: {tables}</p>{paired}
<h2>Figures</h2>{figures}
{'<h3>Per-run figures</h3>' + run_figs if run_figs else ''}
{render_audio(out, summary.get("audio", {}))}
<h2>Steps</h2>{_step_rows(summary["steps"], out)}
<p>Machine-readable: {records}</p>
<h2>Configuration</h2><table>{_config_rows(cfg, summary)}</table>{preset}
{sim}
</body></html>
"""
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path


def describe_device(devices: list[str] | None = None) -> str:
    """What the notebooks ran on, in words: "cpu", "cpu, independent steps in 2 parallel workers of 1 thread" or
    "cuda x N (name)"."""
    try:
        import torch

        if torch.cuda.is_available():
            n = torch.cuda.device_count()
            return f"cuda x {n} ({torch.cuda.get_device_name(0)})" + (", independent steps in parallel" if devices else "")
    except Exception:
        pass
    cpu = [cpu_threads(d) for d in devices or [] if cpu_threads(d)]
    if cpu:
        return f"cpu, independent steps in {len(cpu)} parallel workers of {cpu[0]} thread{'s' if cpu[0] != 1 else ''}"
    return "cpu"


def write_run_record(path, summary: dict) -> dict:
    """Provenance of a whole report: git commit, package versions, python, device, seeds, wall time per step."""
    import platform
    from importlib import metadata

    def version(pkg: str) -> str:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return "not installed"

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True,
                                  text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    cfg = summary.get("config", {})
    record = dict(git_commit=git("rev-parse", "HEAD") or "unknown",
                  git_dirty=bool(git("status", "--porcelain", "--untracked-files=no")),
                  python=sys.version.split()[0], platform=platform.platform(),
                  packages={p: version(p) for p in ("torch", "numpy", "muspy", "papermill", "nbconvert", "vaelib")},
                  device=describe_device(summary.get("parallel_devices")), seeds=cfg.get("seeds"),
                  latent_dims=cfg.get("latent_dims"), preset=cfg.get("preset"), data=cfg.get("data"),
                  started=summary.get("started"), total_wall_sec=summary.get("wall_sec"),
                  steps={s["name"]: dict(status=s["status"], wall_sec=s["wall_sec"], device=s["device"])
                         for s in summary.get("steps", [])})
    Path(path).write_text(json.dumps(record, indent=2))
    return record


def main(argv=None) -> int:
    """``python -m vaelib.pipeline.report_index FOLDER [--check]``: rewrite FOLDER/index.html from its ``pipeline.json``
    (linking only the files the folder holds), then with ``--check`` print ``check_report``'s problems."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m vaelib.pipeline.report_index", description=main.__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--check", action="store_true", help="exit 1 when check_report finds a problem")
    a = p.parse_args(argv)
    folder = Path(a.folder)
    write_index(folder, json.loads((folder / "pipeline.json").read_text()))
    if a.check:
        problems = check_report(folder)
        for x in problems:
            print(x)
        print(f"{folder}: {'OK, self-contained' if not problems else f'{len(problems)} problem(s)'}")
        return 1 if problems else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
