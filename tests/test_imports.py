"""The package's import graph, built from the source (AST, no import executed): no cycles, and imports run one way
through the stages, config and small utilities <- data <- synth <- model <- training <- evaluation <- pipeline.
Lazy (indented) imports count: hiding a cycle inside a function does not remove it."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "vaelib"
# rank of each stage; a module may import its own stage or a lower one
LAYERS = {"": 0, "data": 1, "synth": 2, "model": 3, "training": 4, "evaluation": 5, "pipeline": 6}
# an import that stays inside a function is only for an optional dependency or a measured start-up cost; the
# vaelib modules allowed to be imported lazily, each with the reason
LAZY_OK = {
    "vaelib.synth.vst3": "pedalboard (GPL-3.0) is an optional dependency",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def resolve(name: str) -> str | None:
    """The vaelib module an imported dotted name refers to (``vaelib.x.y`` may be a module or a name in ``x``)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports(mod: str) -> list[tuple[str, bool]]:
    """(imported vaelib module, lazy) for each import in ``mod``'s source."""
    tree = ast.parse(MODULES[mod].read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    for node in tree.body:  # `if TYPE_CHECKING:` / try blocks at module level count as top level
        if isinstance(node, (ast.If, ast.Try)):
            top |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [f"{node.module}.{a.name}" for a in node.names]
        for n in names:
            target = resolve(n) if n.startswith("vaelib") else None
            if target and target != mod:
                out.append((target, id(node) not in top))
    return out


GRAPH = {m: imports(m) for m in MODULES}


def layer(mod: str) -> int:
    parts = mod.split(".")
    return LAYERS.get(parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYERS) else "", 0)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    colour, stack = {}, []

    def visit(m: str) -> list[str] | None:
        colour[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if colour.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in colour and (c := visit(t)):
                return c
        colour[m] = 2
        stack.pop()
        return None

    for m in sorted(graph):
        if m not in colour and (c := visit(m)):
            return c
    return None


def test_the_graph_sees_the_package():
    assert {"vaelib.config", "vaelib.data.tokenizer", "vaelib.model.vae", "vaelib.pipeline.runner"} <= set(MODULES)
    assert ("vaelib.config", False) in GRAPH["vaelib.data.tokenizer"]


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    graph = {m: {t for t, _ in edges} for m, edges in GRAPH.items()}
    assert find_cycle(graph) is None


def test_imports_run_one_way_through_the_stages():
    upward = [f"{m} -> {t}" for m, edges in GRAPH.items() if m != "vaelib" for t, _ in edges if layer(t) > layer(m)]
    assert upward == []


def test_lazy_vaelib_imports_are_only_the_documented_ones():
    lazy = sorted({t for edges in GRAPH.values() for t, is_lazy in edges if is_lazy} - set(LAZY_OK))
    assert lazy == []
