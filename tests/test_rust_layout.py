"""The Rust crates' module graph: no two source files import each other, directly or around a
longer cycle. A file depends on another when it names an item of the other's module: a `use`
(`crate::`, `super::`, `self::`, a child module's name) or a path written in the code
(`crate::x::f()`, `super::f`, `child::f`). A `mod child;` declaration is not an import; a parent
that re-exports its child (`pub use child::X`) does import it, so the child must not reach back
into the parent's own items: shared helpers live in a lower module both can use.
Comments and string literals are ignored; `mod name { ... }` blocks inside a file belong to that
file (so `use super::*` in an inline test module is the file itself)."""

from __future__ import annotations

import pathlib
import re
from typing import Dict, List, Set, Tuple

import pytest
from test_package_layout import _cycles as cycles  # the package test's depth-first cycle finder

ROOT = pathlib.Path(__file__).resolve().parents[1] / "rust"
CRATES = ("core", "capi", "python")

_COMMENT_OR_STRING = re.compile(
    r'//[^\n]*|/\*.*?\*/|r(#*)".*?"\1|b?"(?:\\.|[^"\\])*"|b?\'(?:\\.|[^\'\\])\'', re.S
)
_TOKEN = re.compile(
    r"\b(?P<use>use)\b|\bmod\s+(?P<mod>\w+)\s*(?P<modend>[;{])|(?P<open>\{)|(?P<close>\})"
    r"|(?P<path>(?:\$crate|\bcrate|\bsuper|\bself|\b[a-z_]\w*)(?:\s*::\s*\w+)+)"
)


def _strip(text: str) -> str:
    """Blank out comments and string/char literals, keeping line structure."""
    return _COMMENT_OR_STRING.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _file_module(src: pathlib.Path, path: pathlib.Path) -> Tuple[str, ...]:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("lib", "mod"):
        parts.pop()
    return tuple(parts)


def _use_paths(tree: str, prefix: str = "") -> List[str]:
    """The paths a `use` tree names: `a::{b, c::{d}}` -> a::b, a::c::d."""
    tree = re.sub(r"\s+", "", tree)
    out, depth, start = [], 0, 0
    brace = tree.find("{")
    if brace < 0:
        return [prefix + re.sub(r"as\w+$", "", tree.replace(" ", ""))]
    head, body = tree[:brace], tree[brace + 1 : tree.rindex("}")]
    for i, ch in enumerate(body + ","):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            part = body[start:i]
            start = i + 1
            if part:
                out += _use_paths(part, prefix + head)
    return out


def _references(text: str) -> List[Tuple[Tuple[str, ...], Set[str], str]]:
    """(inline module path within the file, child modules declared there, path) per path named."""
    text = _strip(text)
    refs: List[Tuple[Tuple[str, ...], Set[str], str]] = []
    scopes: List[Tuple[str, int]] = []  # (inline module name, brace depth it opened at)
    children: Dict[Tuple[str, ...], Set[str]] = {}
    depth, pos = 0, 0
    # child modules first: `mod x;` and inline `mod x {` anywhere in the file
    for m in re.finditer(r"\bmod\s+(\w+)\s*[;{]", text):
        children.setdefault((), set()).add(m.group(1))
    while True:
        m = _TOKEN.search(text, pos)
        if not m:
            break
        pos = m.end()
        inline = tuple(name for name, _ in scopes)
        if m.group("use"):
            end = text.index(";", pos)
            for p in _use_paths(text[pos:end]):
                refs.append((inline, children.get((), set()), p))
            pos = end + 1
        elif m.group("mod"):
            if m.group("modend") == "{":
                depth += 1
                scopes.append((m.group("mod"), depth))
        elif m.group("open"):
            depth += 1
        elif m.group("close"):
            if scopes and scopes[-1][1] == depth:
                scopes.pop()
            depth -= 1
        elif m.group("path"):
            refs.append((inline, children.get((), set()), re.sub(r"\s+", "", m.group("path"))))
    return refs


def _resolve(here: Tuple[str, ...], inline: Tuple[str, ...], children: Set[str], path: str,
             files: Dict[Tuple[str, ...], str]) -> str | None:
    """The file whose module holds what `path` names, written in module `here` + `inline`."""
    parts = path.split("::")
    at = list(here + inline)
    if parts[0] in ("crate", "$crate"):
        at, parts = [], parts[1:]
    elif parts[0] in ("self", "super"):
        while parts and parts[0] in ("self", "super"):
            if parts.pop(0) == "super":
                at.pop()
    elif not inline and parts[0] in children:
        pass  # a child module of this file's module
    else:
        return None  # an external crate, a type's associated item, a local enum's variant...
    full = tuple(at + parts)
    for n in range(len(full), -1, -1):
        if full[:n] in files:
            return files[full[:n]]
    return None


def graph() -> Dict[str, Set[str]]:
    edges: Dict[str, Set[str]] = {}
    for crate in CRATES:
        src = ROOT / crate / "src"
        files = {_file_module(src, p): str(p.relative_to(ROOT)) for p in sorted(src.rglob("*.rs"))}
        for module, name in files.items():
            edges[name] = set()
            text = (ROOT / name).read_text(encoding="utf-8")
            for inline, children, path in _references(text):
                target = _resolve(module, inline, children, path, files)
                if target is not None and target != name:
                    edges[name].add(target)
    return edges


def test_the_graph_sees_the_imports():
    edges = graph()
    assert "core/src/check.rs" in edges["core/src/divergence/mod.rs"]
    assert "core/src/simd/mod.rs" in edges["core/src/divergence/softmax_simd.rs"]
    assert "core/src/loss/outputs.rs" in edges["core/src/check.rs"]
    assert "core/src/simd/vmath/real.rs" in edges["core/src/simd/vmath/exp.rs"]


def test_the_parser_reads_use_trees_and_paths():
    assert sorted(_use_paths("crate::{a::b, c::{d, e as f}}")) == ["crate::a::b", "crate::c::d", "crate::c::e"]
    refs = _references('mod x; use x::y; // crate::z\nfn f() { crate::w::g(); "crate::s"; }\n'
                       "mod tests { use super::*; }")
    assert [(i, p) for i, _, p in refs] == [((), "x::y"), ((), "crate::w::g"), (("tests",), "super::*")]
    files = {(): "lib.rs", ("w",): "w.rs", ("x",): "x.rs"}
    assert _resolve((), ("tests",), {"x"}, "super::*", files) == "lib.rs"
    assert _resolve((), (), {"x"}, "x::y", files) == "x.rs"
    assert _resolve(("x",), (), set(), "super::w::g", files) == "w.rs"


CRATE_PARAMS = ["core", "capi", "python"]


def _crate(edges: Dict[str, Set[str]], crate: str) -> Dict[str, Set[str]]:
    return {a: b for a, b in edges.items() if a.startswith(crate + "/")}


@pytest.mark.parametrize("crate", CRATE_PARAMS)
def test_no_two_rust_files_import_each_other(crate):
    edges = _crate(graph(), crate)
    pairs = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if a in edges.get(b, ())})
    assert pairs == []


@pytest.mark.parametrize("crate", CRATE_PARAMS)
def test_no_cycle_between_rust_files(crate):
    assert cycles(_crate(graph(), crate)) == []
