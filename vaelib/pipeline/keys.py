"""Step keys and the pipeline's state file: what decides whether a ``vaelib.pipeline`` step can be skipped.

A step's key hashes its parameters, its notebook, its upstream steps' keys and run ids, the content of its input
files, and a salt standing for the library code (the preset plus the vaelib sources its notebook imports).
The state file ``OUT/.pipeline_state.json`` maps each successful step to its key, key parts and run id.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vaelib.atomic import atomic_write_text
from vaelib.config import get_preset
from vaelib.pipeline.step import Step

STATE_FILE = ".pipeline_state.json"


def fingerprint(path) -> str:
    """Content hash of a file; for a folder, of its file names, sizes and mtimes (cheap for big MIDI folders)."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_file():
        h.update(p.read_bytes())
    elif p.is_dir():
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    else:
        return "missing"
    return h.hexdigest()


def key_parts(step: Step, notebook: Path, upstream: list[dict], salt: str = "") -> dict[str, str]:
    """Hashes of what determines a step's result, by part.

    ``upstream`` holds the deps' ``{key, run_id}``; ``salt`` stands for the library code (see ``library_salt``).
    """
    def digest(obj) -> str:
        return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]

    return dict(parameters=digest(step.parameters), notebook=fingerprint(notebook)[:16], upstream=digest(upstream),
                inputs=digest({i: fingerprint(i) for i in step.inputs}), library=digest(salt))


def step_key(step: Step, notebook: Path, upstream: list[dict], salt: str = "") -> str:
    """One hash over ``key_parts``: equal keys mean the step would compute the same thing."""
    return hashlib.sha256(json.dumps(key_parts(step, notebook, upstream, salt), sort_keys=True).encode()).hexdigest()


def library_sources(notebook) -> list[Path]:
    """The vaelib source files a notebook reaches through its imports, followed transitively (sorted)."""
    import ast

    import nbformat

    pkg = Path(__file__).resolve().parents[1]  # the vaelib package folder

    def files_of(module: str) -> list[Path]:
        base = pkg.parent / module.replace(".", "/")
        return [f for f in (base.with_suffix(".py"), base / "__init__.py") if f.is_file()]

    def imported(tree, package: str = "") -> set[str]:
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                parent = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]) if node.level else ""
                module = ".".join(p for p in (parent, node.module) if p)
                names |= {module} | {f"{module}.{a.name}" for a in node.names}  # `from vaelib import x`: maybe a module
        return {n for n in names if n == "vaelib" or n.startswith("vaelib.")}

    cells = [c.source for c in nbformat.read(str(notebook), as_version=4).cells if c.cell_type == "code"]
    code = "\n".join(ln for c in cells for ln in c.splitlines() if not ln.lstrip().startswith(("%", "!")))
    try:
        todo = imported(ast.parse(code)) | {"vaelib"}
    except SyntaxError:  # unparsable notebook: depend on the whole library
        return sorted(pkg.rglob("*.py"))
    seen: set[Path] = set()
    while todo:
        for f in files_of(todo.pop()):
            if f not in seen:
                seen.add(f)
                package = ".".join(f.relative_to(pkg.parent).with_suffix("").parts[:-1])  # for relative imports
                todo |= imported(ast.parse(f.read_text(encoding="utf-8")), package)
    return sorted(seen)


def library_salt(preset: str, notebook) -> str:
    """Hash of the preset and of the vaelib sources the notebook imports, so a relevant library edit reruns it."""
    h = hashlib.sha256(get_preset(preset).to_json().encode())
    root = Path(__file__).resolve().parents[2]
    for f in library_sources(notebook):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def load_state(out) -> dict:
    path = Path(out) / STATE_FILE
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def save_state(out, state: dict) -> None:
    """Atomic, so an interrupted pipeline never leaves a half-written state file."""
    atomic_write_text(Path(out) / STATE_FILE, json.dumps(state, indent=2, sort_keys=True))
