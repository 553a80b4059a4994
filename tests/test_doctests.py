"""Every docstring example of every ``aar`` module runs and shows what it prints."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
import re
import sys

import pytest
import torch

import aar

#: Optional dependencies: a module that needs one is skipped (not failed) where it is missing.
OPTIONAL = ("laion_clap", "transformers", "ray", "datasets", "pyarrow", "huggingface_hub", "gradio")

#: Modules whose headline examples must exist (and so run), not merely pass.
WITH_EXAMPLES = {"aar.generator", "aar.tokenizer", "aar.generation.sampling", "aar.generation.options",
                 "aar.precision.placement",
                 "aar.generation.editing", "aar.nn.transformer", "aar.nn.kv_cache", "aar.demo.pictures",
                 "aar.demo.settings"}

MODULES = sorted(
    info.name for info in pkgutil.walk_packages(aar.__path__, prefix="aar.") if info.name != "aar.__main__"
)


def test_every_module_is_listed():
    assert WITH_EXAMPLES <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, one_thread):
    try:
        module = importlib.import_module(name)
    except ImportError as err:
        if err.name and err.name.split(".")[0] in OPTIONAL:
            pytest.skip(f"{name} needs {err.name}, which is not installed")
        raise
    torch.manual_seed(0)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    skipped: dict[str, set[str]] = {}
    for test in finder.find(module, name, globs=vars(module).copy()):
        missing = _missing_packages(test)
        if missing:  # the example imports an extra that is not installed here
            skipped[test.name] = missing
            continue
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples in {name} failed"
    if skipped:
        pytest.skip(f"examples of {sorted(skipped)} need {sorted(set().union(*skipped.values()))}, "
                    "which is not installed (the others passed)")
    assert results.attempted > 0 or name not in WITH_EXAMPLES


def _missing_packages(test: doctest.DocTest) -> set[str]:
    """The optional packages that ``test``'s examples import and that cannot be imported here."""
    source = "\n".join(example.source for example in test.examples)
    named = {pkg for pkg in OPTIONAL if re.search(rf"^\s*(from|import)\s+{pkg}\b", source, re.M)}
    return {pkg for pkg in named
            if sys.modules.get(pkg, False) is None or importlib.util.find_spec(pkg) is None}


def test_an_example_that_needs_a_missing_extra_is_skipped(monkeypatch, one_thread):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as where the data extra is not installed
    with pytest.raises(pytest.skip.Exception, match=r"tokenize_dataset.*need \['datasets'\]"):
        test_docstring_examples("aar.data.hf", None)
