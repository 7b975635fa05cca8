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

from vaelib.slots import cpu_threads

TABLE_FILES = ("table1.csv", "table1.md", "table1.tex", "table1_paired.csv", "table1_paired.md", "table1_runs.csv")
FIGURE_SUFFIXES = (".png", ".svg", ".jpg")
STATUS_COLOURS = {"ok": "#1a7f37", "skipped-unchanged": "#57606a", "FAILED": "#cf222e", "blocked": "#9a6700",
                  "missing": "#9a6700"}

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1f2328}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:.3em .6em;text-align:left}
th{background:#f6f8fa}pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:85%}
figure{display:inline-block;margin:.5em;max-width:48%}figure img{max-width:100%}figcaption{font-size:85%}
.status{font-weight:bold}"""


def collect_artifacts(out) -> dict:
    """Table 1 files and figures found under ``out``, as paths relative to it: ``{"tables": [...], "figures": [...]}``."""
    out = Path(out)
    tables = [t for t in TABLE_FILES if (out / t).is_file()]
    figures = sorted(p.relative_to(out).as_posix() for p in (out / "figures").rglob("*")
                     if p.suffix.lower() in FIGURE_SUFFIXES and p.is_file()) if (out / "figures").is_dir() else []
    return dict(tables=tables, figures=figures)


def markdown_table_to_html(text: str) -> str | None:
    """A Markdown pipe table (header, ``---`` rule, rows) as an HTML table; None when ``text`` is not one."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) < 2 or not all(ln.startswith("|") for ln in lines) or not set(lines[1]) <= set("|:- "):
        return None

    def cells(line: str) -> list[str]:
        return [html.escape(c.strip()) for c in line.strip("|").split("|")]

    head = "".join(f"<th>{c}</th>" for c in cells(lines[0]))
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in cells(ln)) + "</tr>" for ln in lines[2:])
    return f"<table><tr>{head}</tr>{body}</table>"


def render_table(out, stem: str = "table1") -> str:
    """``<stem>.md`` as an HTML table ("value [lo, hi]" cells), else ``<stem>.csv`` through pandas, else a note."""
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


def render_verdicts(out) -> str:
    """One line per run folder from ``table1_runs.csv`` (written by ``vaelib.table``): does its decoder use z?"""
    path = Path(out) / "table1_runs.csv"
    if not path.is_file():
        return ""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error) as e:  # a malformed file should not cost the whole index
        return f"<p>table1_runs.csv could not be read: {html.escape(repr(e))}</p>"
    items = "".join(
        f'<li><b>{html.escape(r.get("run", ""))}</b> ({html.escape(r.get("objective", "") or "objective unknown")}): '
        f'<span class="status" style="color:{STATUS_COLOURS["FAILED" if r.get("collapsed") == "True" else "ok"]}">'
        f'{html.escape(r.get("verdict", ""))}</span></li>' for r in rows)
    return f"<h3>Does each run use z?</h3><ul>{items}</ul>" if items else ""


def _step_rows(steps: list[dict]) -> str:
    rows = []
    for s in steps:
        colour = STATUS_COLOURS.get(s["status"], "#1f2328")
        link = f'<a href="{html.escape(s["html"])}">report</a>' if s.get("html") else ""
        nb = f' · <a href="{html.escape(s["ipynb"])}">ipynb</a>' if s.get("ipynb") else ""
        error = f"<br><small>{html.escape(s['error'][:500])}</small>" if s.get("error") else ""
        rows.append(f'<tr><td>{html.escape(s["name"])}</td><td class="status" style="color:{colour}">'
                    f'{html.escape(s["status"])}</td><td>{s.get("wall_sec", 0):.1f}</td>'
                    f'<td>{link}{nb}</td><td>{html.escape(s.get("device", ""))}{error}</td></tr>')
    return ("<table><tr><th>step</th><th>status</th><th>wall (s)</th><th>output</th><th>device / error</th></tr>"
            + "".join(rows) + "</table>")


def write_index(out, summary: dict) -> Path:
    """Write ``out/index.html`` from the pipeline summary (see ``vaelib.pipeline.run_pipeline``)."""
    out = Path(out)
    cfg = dict(summary.get("config", {}))
    preset_cfg = cfg.pop("preset_config", None)
    failed = [s["name"] for s in summary["steps"] if s["status"] not in ("ok", "skipped-unchanged")]
    verdict = (f'<p class="status" style="color:{STATUS_COLOURS["FAILED"]}">Not complete: '
               f'{html.escape(", ".join(failed))}</p>' if failed else
               f'<p class="status" style="color:{STATUS_COLOURS["ok"]}">All steps succeeded.</p>')
    config_rows = "".join(f"<tr><th>{html.escape(str(k))}</th>"
                          f"<td>{html.escape(v if isinstance(v, str) else json.dumps(v))}</td></tr>" for k, v in cfg.items())
    config_rows += (f"<tr><th>started</th><td>{html.escape(str(summary.get('started', '')))}</td></tr>"
                    f"<tr><th>wall (s)</th><td>{summary.get('wall_sec', 0):.1f}</td></tr>")
    tables = " · ".join(f'<a href="{t}">{t}</a>' for t in summary.get("tables", []))
    figures = "".join(f'<figure><a href="{html.escape(f)}"><img src="{html.escape(f)}" alt="{html.escape(f)}"></a>'
                      f"<figcaption>{html.escape(Path(f).stem.replace('_', ' '))}</figcaption></figure>"
                      for f in summary.get("figures", [])) or "<p><em>No figures yet.</em></p>"
    paired = (f"<details><summary>paired tests between latent sizes</summary>{render_table(out, 'table1_paired')}"
              "</details>" if any(t.startswith("table1_paired") for t in summary.get("tables", [])) else "")
    preset = (f"<details><summary>preset configuration</summary><pre>{html.escape(json.dumps(preset_cfg, indent=2))}"
              "</pre></details>" if preset_cfg else "")
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>vaelib report: {html.escape(str(cfg.get('preset', '')))}</title>
<style>{CSS}</style></head><body>
<h1>vaelib report{': ' + html.escape(str(cfg['preset'])) if 'preset' in cfg else ''}</h1>
{verdict}
<h2>Steps</h2>{_step_rows(summary["steps"])}
<p>Machine-readable: <a href="pipeline.json">pipeline.json</a> · <a href="run_record.json">run_record.json</a></p>
<h2>Table 1</h2>{render_table(out)}{render_verdicts(out)}<p>{tables}</p>{paired}
<h2>Figures</h2>{figures}
<h2>Configuration</h2><table>{config_rows}</table>{preset}
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
