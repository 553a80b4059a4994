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

#: Top to bottom. A name stands for that module and, for a package, every module inside it; a
#: module listed on its own (``aar.generation.editing``) is placed before its package's entry.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("aar", "aar.__main__", "aar.cli", "aar.demo"),  # the faces: the command and the browser demo
    ("aar.evaluation", "aar.data"),  # whole sets of files and corpora, on top of the models
    ("aar.metrics",),  # distances, scores and the networks they are computed on
    ("aar.generator",),
    ("aar.generation.editing", "aar.generation.long_generation"),  # through window.WindowGenerator
    ("aar.tokenizer", "aar.conditioning"),
    ("aar.generation", "aar.precision"),  # the next-scale loop, sampling; the precision swaps
    ("aar.nn",),  # building blocks, one arithmetic path each
    ("aar.loading", "aar.errors", "aar.config", "aar.codes", "aar.audio", "aar.version"),  # values
)
#: The public faces and shared values: all that ``aar/`` holds outside its packages.
TOP_LEVEL = {"aar", "aar.__main__", "aar.version", "aar.tokenizer", "aar.generator", "aar.config",
             "aar.codes", "aar.audio", "aar.errors"}
MAX_TOP_LEVEL = 12

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
        for alias in node.names:  # ``from aar.loading import hub`` imports aar.loading.hub
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
        "from ..loading import hub\n"
        "from aar import SATConfig\n"
        "if TYPE_CHECKING:\n"
        "    import aar.generator\n"
        "else:\n"
        "    import aar.codes\n"  # line 9
        "def load():\n"
        "    from ..tokenizer import SATTokenizer\n"  # line 11
    )
    assert read_imports(source, "aar.nn.seanet") == {
        ("aar.nn.conv", 3), ("aar.loading.hub", 4), ("aar", 5), ("aar.codes", 9), ("aar.tokenizer", 11)}
    source = "from .conditioning import clap\nfrom .nn import seanet\n"
    assert read_imports(source, "aar", is_package=True) == {
        ("aar.conditioning.clap", 1), ("aar.nn.seanet", 2)}
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


def _is_package(name: str) -> bool:
    return modules()[name].name == "__init__.py"


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_private_module_is_imported_from_outside_its_package(name):
    """What two packages share is public there: ``aar.data.batch``, not ``aar.data._batch``."""
    ours = name if _is_package(name) else _package(name)
    for target, line in imports(name):
        private = target.rsplit(".", 1)[-1].startswith("_") and target != "aar.__main__"
        if private and target in modules() and _package(target) != ours:
            pytest.fail(f"{name} (line {line}) imports {target}, a private module of {_package(target)}")


def test_the_top_level_holds_only_the_public_faces_and_shared_values():
    top = {m for m in modules() if m.count(".") <= 1 and not _is_package(m) or m == "aar"}
    assert top == TOP_LEVEL, f"modules directly in aar/: {sorted(top)}; the faces are {sorted(TOP_LEVEL)}"
    assert len(top) <= MAX_TOP_LEVEL


def test_no_module_name_is_used_twice():
    """``conditioning/clap.py`` and a ``metrics/clap.py`` would read as one thing: basenames are unique."""
    seen: dict[str, list[str]] = {}
    for name in modules():
        if not _is_package(name):
            seen.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    assert {base: names for base, names in seen.items() if len(names) > 1} == {}


@pytest.mark.parametrize("name", sorted(m for m in modules() if m != "aar" and _is_package(m)))
def test_every_package_says_what_it_owns_and_may_import(name):
    doc = ast.get_docstring(ast.parse(modules()[name].read_text())) or ""
    assert "Owns:" in doc and "May import:" in doc, f"{name}'s docstring: say what it owns and may import"


def test_the_blocks_keep_one_arithmetic_path():
    """``aar.nn`` never asks which precision it runs in: int8 and bfloat16 are modules that
    ``aar.precision`` swaps in, as ``torch.ao.quantization.quantize_dynamic`` does."""
    words = ("int8", "float16", "reduced", "fused")
    found = [(m, w) for m in modules() if m.startswith("aar.nn") for w in words
             if w in _code_without_docstrings(modules()[m].read_text())]
    assert found == []


def _code_without_docstrings(source: str) -> str:
    """The source's code with every docstring and comment removed."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
            body[0] = ast.Pass()
    return ast.unparse(tree)


@pytest.mark.parametrize(("old", "new"), sorted(__import__("aar").MOVED_MODULES.items()))
def test_a_moved_module_still_imports_under_its_old_name_with_a_warning(old, new):
    """aar 0.1's module names keep working until 0.3: the same objects, and a DeprecationWarning."""
    import importlib
    import sys

    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        alias = importlib.import_module(old)
    real = importlib.import_module(new)
    assert old not in modules() and new in modules()
    public = [name for name in dir(real) if not name.startswith("_")]
    assert public and all(getattr(alias, name) is getattr(real, name) for name in public)


def test_the_old_precision_functions_warn_and_are_the_new_ones():
    import aar.precision
    import aar.precision.policy

    with pytest.warns(DeprecationWarning, match="aar.precision.policy.apply_precision"):
        assert aar.precision.apply_precision is aar.precision.policy.apply_precision
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        aar.precision.nothing  # noqa: B018
