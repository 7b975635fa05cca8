"""One pipeline step is one notebook: find it, execute it with papermill, and convert the result to a static page.

``execute`` runs the notebook with its parameters in the output folder (cwd), then writes its HTML beside it with
images and audio embedded, widgets as plain text and the theme CSS shared by the pages of one folder. It never
raises for a failing notebook: the partial notebook keeps the traceback and the result says FAILED.
"""
from __future__ import annotations

import html
import os
import time
import traceback
import uuid
from pathlib import Path

from vaelib.pipeline.step import FAILED, OK, Step, StepResult
from vaelib.slots import current_slot

# The notebooks ship inside the package (package data), so an installed vaelib finds them; --notebooks-dir overrides.
NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def find_notebook(notebooks_dir, stem: str) -> Path | None:
    """``notebooks_dir/<stem>.ipynb``, else the one notebook sharing its number prefix (``02_*.ipynb``)."""
    exact = Path(notebooks_dir) / f"{stem}.ipynb"
    if exact.exists():
        return exact
    same_number = sorted(Path(notebooks_dir).glob(f"{stem.split('_')[0]}_*.ipynb"))
    return same_number[0] if len(same_number) == 1 else None


def kernel_manager_class():
    """The kernel manager papermill starts each notebook's kernel with: IPC transport (Unix sockets in Jupyter's
    runtime folder) where the OS has it, so the kernel's messages never travel over TCP and ipykernel has no
    unencrypted-TCP warning to give. TCP (the Jupyter default) on Windows."""
    from jupyter_client import AsyncKernelManager
    from jupyter_core.paths import jupyter_runtime_dir
    from traitlets import default

    if os.name == "nt":
        return AsyncKernelManager

    class IPCKernelManager(AsyncKernelManager):
        @default("transport")
        def _transport_default(self) -> str:
            return "ipc"

        @default("ip")
        def _ip_default(self) -> str:  # socket files <this>-<port number>, removed when the kernel shuts down
            runtime = Path(jupyter_runtime_dir())
            runtime.mkdir(parents=True, exist_ok=True, mode=0o700)
            return str(runtime / f"kernel-{uuid.uuid4().hex[:12]}-ipc")

    return IPCKernelManager


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _widget_text(model_id: str, state: dict) -> str:
    """Plain text of a saved widget: a progress bar (tqdm's box of HTML, progress, HTML) as its final line;
    "" for any other widget."""
    import re

    def text(mid: str) -> str:
        m = state.get(mid.removeprefix("IPY_MODEL_"), {}).get("state", {})
        name = m.get("_model_name", "")
        if name in ("HTMLModel", "LabelModel"):
            return html.unescape(re.sub(r"<[^>]+>", "", str(m.get("value", "")))).replace("\u2007", " ").strip()
        if name in ("FloatProgressModel", "IntProgressModel"):
            return "|"
        if name in ("HBoxModel", "VBoxModel", "BoxModel"):
            return " ".join(t for t in (text(c) for c in m.get("children", [])) if t)
        return ""

    m = state.get(model_id, {}).get("state", {})
    kids = [state.get(c.removeprefix("IPY_MODEL_"), {}).get("state", {}).get("_model_name", "")
            for c in m.get("children", [])]
    return text(model_id) if any("Progress" in k for k in kids) else ""


def plain_outputs(nb) -> None:
    """Replace every widget output of ``nb`` by plain text (in place) and drop the saved widget state: a static
    page cannot run widgets (offline they render as nothing), so a progress bar becomes its final text line and
    an interactive widget a note to open the notebook in Jupyter."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW not in data:
                continue
            line = _widget_text(data[WIDGET_VIEW].get("model_id", ""), state)
            out["data"] = {"text/plain": line or ("[interactive widget: open the .ipynb in Jupyter to use it; "
                                                  "the static results below are what this page can show]")}
    nb.metadata.pop("widgets", None)


def _share_theme_css(body: str, folder: Path) -> str:
    """Move the page's head ``<style>`` blocks (nbconvert's theme, ~260 kB, the same for every notebook) into one
    ``notebook-<hash>.css`` beside the page, linked from it."""
    import hashlib
    import re

    head_end = body.find("</head>")
    styles = re.findall(r"<style[^>]*>(.*?)</style>", body[:max(head_end, 0)], flags=re.S)
    if not styles:
        return body
    css = "\n".join(styles)
    name = f"notebook-{hashlib.sha256(css.encode()).hexdigest()[:10]}.css"
    if not (folder / name).exists():
        tmp = folder / f"{name}.{os.getpid()}.tmp"
        tmp.write_text(css, encoding="utf-8")
        os.replace(tmp, folder / name)
    head = re.sub(r"<style[^>]*>.*?</style>\s*", "", body[:head_end], flags=re.S)
    return head + f'<link rel="stylesheet" href="{name}">\n' + body[head_end:]


def to_html(ipynb, html_path) -> Path:
    """Convert an executed (possibly partial) notebook to HTML: images and audio players embedded, widgets as plain
    text (``plain_outputs``), the theme CSS shared by the pages of one folder (``_share_theme_css``)."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(ipynb), as_version=4)
    plain_outputs(nb)
    body, _ = HTMLExporter().from_notebook_node(nb)
    Path(html_path).write_text(_share_theme_css(body, Path(html_path).parent), encoding="utf-8")
    return Path(html_path)


def execute(step: Step, notebook: str, out: str, log_output: bool = False) -> StepResult:
    """Run one step with papermill (cwd = ``out``, which the step's parameter paths are relative to) and convert
    the result to HTML. ``log_output``
    streams the cell output to the log as it runs. Never raises for a notebook failure: the partial notebook is
    converted and the result says FAILED."""
    import papermill

    out = Path(out)
    ipynb, page = out / "notebooks" / f"{step.name}.ipynb", out / "notebooks" / f"{step.name}.html"
    ipynb.parent.mkdir(parents=True, exist_ok=True)
    for stale in (ipynb, page):  # a leftover from an earlier run must not pass for this one
        stale.unlink(missing_ok=True)
    result = StepResult(step.name, step.notebook, OK, step.parameters, ipynb=ipynb.relative_to(out).as_posix(),
                        html=page.relative_to(out).as_posix(), device=current_slot())
    t0 = time.perf_counter()
    try:
        papermill.execute_notebook(str(notebook), str(ipynb), parameters=step.parameters, kernel_name="python3",
                                   cwd=str(out.resolve()), progress_bar=False, log_output=log_output,
                                   kernel_manager_class=kernel_manager_class())
    except Exception as e:  # papermill has already saved the partial notebook with the error cell
        result.status = FAILED
        result.error = (f"cell {e.cell_index}: {e.ename}: {e.evalue}" if hasattr(e, "ename")  # the notebook raised
                        else f"{type(e).__name__}: {e}")[-4000:]  # the kernel died or never started
    result.wall_sec = round(time.perf_counter() - t0, 3)
    try:
        if ipynb.exists():
            to_html(ipynb, page)
        else:
            raise FileNotFoundError(f"papermill wrote no notebook for {step.name}")
    except Exception:  # the kernel never started, or the notebook is unreadable: keep the traceback visible
        page.write_text(f"<html><body><h1>{html.escape(step.name)}: {result.status}</h1><pre>"
                        f"{html.escape(result.error)}\n\n{html.escape(traceback.format_exc())}</pre></body></html>",
                        encoding="utf-8")
        if result.status == OK:
            result.status, result.error = FAILED, traceback.format_exc()[-4000:]
    if result.status == OK:
        missing = [o for o in step.outputs if not Path(o).exists()]
        if missing:
            result.status, result.error = FAILED, f"notebook finished but did not write {missing}"
    result.run_id = uuid.uuid4().hex if result.status == OK else ""
    return result
