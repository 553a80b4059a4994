"""The shape of the package, read from the source with ``ast``: imports run one way, modules stay short.

The layers are those of ``docs/architecture.md``, top to bottom; a module may import modules of its
own layer and of the layers below, never above. Every import counts, also one inside a function (it
runs as soon as that function does); only imports under ``if TYPE_CHECKING:`` are left out.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "aar"
MAX_LINES = 400

#: Top to bottom. A name stands for that module and, for a package, every module inside it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("aar", "aar.__main__", "aar.cli", "aar._commands", "aar._reports",
     "aar._eval_commands", "aar._eval_parser", "aar.demo"),  # the face
    ("aar.data", "aar.evaluation", "aar.eval", "aar.metrics"),  # whole-corpus work on top of the models
    ("aar.generator",),
    ("aar.editing", "aar.long_generation"),  # work through the WindowGenerator protocol, not the class
    ("aar.tokenizer", "aar.clap", "aar._clap_backends", "aar.codes_file"),
    ("aar.next_scale", "aar.sampling", "aar.sampling_options", "aar.scoring", "aar.conditions",
     "aar.placement", "aar.precision", "aar.window_generator"),  # functions, mixins, contracts of models
    ("aar.nn",),  # building blocks
    ("aar.convert", "aar.hub", "aar._loading", "aar.errors", "aar.config", "aar.codes", "aar.audio",
     "aar._files", "aar._checks", "aar._version"),  # values and plumbing: import no model
)

def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST):
    """Every Import/ImportFrom below ``tree``, functions included, ``if TYPE_CHECKING:`` excluded."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (n for child in node.orelse for n in _import_nodes(ast.Module([child], [])))
            continue
        yield from _import_nodes(node)


def read_imports(source: str, name: str, is_package: bool = False) -> frozenset[tuple[str, int]]:
    """The modules of ``aar`` that the code ``source`` of module ``name`` imports, with their lines."""
    known = modules()
    found = set()
    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {(a.name, node.lineno) for a in node.names if a.name.split(".")[0] == "aar"}
            continue
        if node.level:  # relative: from the package that holds the module
            base = name.split(".") if is_package else name.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if target.split(".")[0] != "aar":
            continue
        for alias in node.names:  # ``from aar import hub`` imports the module aar.hub
            sub = f"{target}.{alias.name}"
            found.add((sub if sub in known else target, node.lineno))
    return frozenset(found)


@cache
def imports(name: str) -> frozenset[tuple[str, int]]:
    path = modules()[name]
    return read_imports(path.read_text(), name, path.name == "__init__.py")


def layer(name: str) -> int | None:
    """Index of the layer of module ``name`` in ``LAYERS`` (0 is the top), or None if unplaced."""
    for index, members in enumerate(LAYERS):
        if any(name == m or (m != "aar" and name.startswith(m + ".")) for m in members):
            return index
    return None


def cycles(skip_from: frozenset[str] = frozenset()) -> list[list[str]]:
    """Strongly connected groups of two or more modules (or a module importing itself)."""
    graph = {m: sorted({t for t, _ in imports(m)} & modules().keys())
             for m in modules() if m not in skip_from}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
            if len(group) > 1 or v in graph.get(v, ()):
                groups.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return groups


# ------------------------------------------------------------------------------------ the checks
def test_the_reader_sees_relative_and_lazy_imports():
    """The graph itself: lazy, relative and ``from aar import module`` imports are found;
    ``TYPE_CHECKING`` imports are not."""
    source = (
        "from typing import TYPE_CHECKING\n"
        "import torch\n"
        "from .conv import PaddedConv1d\n"  # line 3
        "from .. import hub\n"
        "from aar import SATConfig\n"
        "if TYPE_CHECKING:\n"
        "    import aar.generator\n"
        "else:\n"
        "    import aar.codes\n"  # line 9
        "def load():\n"
        "    from ..tokenizer import SATTokenizer\n"  # line 11
    )
    assert read_imports(source, "aar.nn.seanet") == {
        ("aar.nn.conv", 3), ("aar.hub", 4), ("aar", 5), ("aar.codes", 9), ("aar.tokenizer", 11)}
    assert read_imports("from . import clap\nfrom .nn import seanet\n", "aar", is_package=True) == {
        ("aar.clap", 1), ("aar.nn.seanet", 2)}
    assert layer("aar.nn.seanet") == layer("aar.nn") > layer("aar.generator") > layer("aar.cli")


def test_every_module_has_a_layer():
    unplaced = [m for m in modules() if layer(m) is None]
    assert not unplaced, f"place {unplaced} in LAYERS here and in docs/architecture.md"


def test_no_import_cycle():
    assert cycles() == []


@pytest.mark.parametrize("name", list(modules()))
def test_imports_run_down_the_layers(name):
    upward = sorted(
        f"{target} (line {line})" for target, line in imports(name)
        if layer(target) is not None and layer(target) < layer(name)
    )
    assert not upward, f"{name} (layer {layer(name)}) imports from a layer above: {upward}"


def test_blocks_import_only_blocks():
    """``aar/nn`` builds from plain values: no config, no files, no models."""
    outside = {(m, t) for m in modules() if m.startswith("aar.nn") for t, _ in imports(m)
               if not (t == "aar.nn" or t.startswith("aar.nn."))}
    assert not outside


@pytest.mark.parametrize("name", list(modules()))
def test_module_length(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{modules()[name].name} has {lines} lines (at most {MAX_LINES})"


def _package(name: str) -> str:
    """The package a module belongs to: ``aar.data.batch`` -> ``aar.data``; a top-level one -> ``aar``."""
    return name.rsplit(".", 1)[0] if name.count(".") >= 1 else name


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_private_module_of_a_subpackage_is_imported_from_outside_it(name):
    """What a subpackage shares is public: ``aar.data.batch``, not ``aar.data._batch``. (The private
    plumbing of the top level, ``aar._files`` and the like, is still shared with the subpackages.)"""
    ours = name if (PACKAGE / Path(*name.split(".")[1:]) / "__init__.py").exists() else _package(name)
    for target, line in imports(name):
        private = target.rsplit(".", 1)[-1].startswith("_") and not target.endswith("__init__")
        owner = _package(target)
        if private and target in modules() and owner != "aar" and owner != ours:
            pytest.fail(f"{name} (line {line}) imports {target}, a private module of {owner}")
