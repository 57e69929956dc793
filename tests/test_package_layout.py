"""The package's module graph: no two modules import each other (directly or around a longer
cycle, counting imports inside functions and under TYPE_CHECKING), and no module imports another
module's private names (a leading underscore) — the private *modules* (`_arrays`, `_layout`,
`_native`, `_cuda`, `_dispatch`) are the package's shared internals and are imported whole."""

from __future__ import annotations

import ast
import pathlib
from typing import Dict, List, Set, Tuple

ROOT = pathlib.Path(__file__).resolve().parents[1] / "python" / "logitdiv"


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> Dict[str, pathlib.Path]:
    """Every module of the package; the native module (a leaf) by its stub."""
    return {_module_name(p): p for p in [*ROOT.rglob("*.py"), *ROOT.rglob("*.pyi")]}


def _imports(name: str, path: pathlib.Path, known: Set[str]) -> List[Tuple[str, List[str]]]:
    """(imported module, names taken from it) for every import of a package module in `path`."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name in known]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for a in node.names:  # `from . import x` imports the module x
                sub = f"{target}.{a.name}"
                if sub in known:
                    out.append((sub, []))
                elif target in known:
                    out.append((target, [a.name]))
    return out


def _graph() -> Tuple[Dict[str, Set[str]], List[str]]:
    mods = _modules()
    known = set(mods)
    edges: Dict[str, Set[str]] = {m: set() for m in mods}
    private = []
    for name, path in mods.items():
        for target, names in _imports(name, path, known):
            if target == name:
                continue
            # a package's __init__ re-exporting its own modules is not a dependency of theirs on it
            edges[name].add(target)
            private += [f"{name} imports {target}.{n}" for n in names if n.startswith("_") and n != "__version__"]
    return edges, private


def _cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Every cycle found by a depth-first search (each reported once per back edge)."""
    found, state, stack = [], {}, []

    def visit(m: str) -> None:
        state[m] = "open"
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == "open":
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = "done"

    for m in sorted(edges):
        if m not in state:
            visit(m)
    return found


def _without_package_inits(edges: Dict[str, Set[str]]) -> Dict[str, Set[str]]:
    """Edges into a package's __init__ from its own submodules come from relative imports of a
    sibling (`from . import x`), already counted as edges to x; drop them."""
    return {m: {n for n in targets if not m.startswith(n + ".")} for m, targets in edges.items()}


def test_the_graph_sees_the_scoring_package():
    edges, _ = _graph()
    assert "logitdiv.scoring.batch" in edges["logitdiv.scoring"]
    assert "logitdiv.scoring.readers" in edges["logitdiv.scoring.writers"]
    assert "logitdiv._arrays" in edges["logitdiv.scoring.metrics"]


def test_the_array_layout_is_below_the_argument_rules():
    """`_layout` (sides, row views, memory-mapped files) imports no module of the package, and
    `_arrays` (the argument rules) imports only it: the rules build on the layout, never the reverse."""
    edges, _ = _graph()
    assert edges["logitdiv._layout"] == set()
    assert edges["logitdiv._arrays"] == {"logitdiv._layout"}
    assert "logitdiv._layout" in edges["logitdiv.losses"]


def test_no_two_modules_import_each_other():
    edges, _ = _graph()
    assert _cycles(_without_package_inits(edges)) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_a_private_name_of_another():
    _, private = _graph()
    assert private == []


def test_the_scoring_modules_import_only_those_listed_above_them():
    """The module table of logitdiv.scoring's docstring is an import order: each module imports
    only modules listed above it (and the package's shared internals)."""
    import logitdiv.scoring as scoring

    table = scoring.__doc__.split("module          what it holds")[1]
    order = [line.split("``")[1] for line in table.splitlines() if line.startswith("``")]
    listed = {f"logitdiv.scoring.{m}" for m in order}
    edges, _ = _graph()
    assert listed == {m for m in edges if m.startswith("logitdiv.scoring.")}
    for i, m in enumerate(order):
        above = {f"logitdiv.scoring.{n}" for n in order[:i]}
        inside = {n for n in edges[f"logitdiv.scoring.{m}"] if n.startswith("logitdiv.scoring.")}
        assert inside <= above, f"{m} imports {sorted(inside - above)}, listed below it"
