"""Every docstring example of every ``aar`` module runs and shows what it prints."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest
import torch

import aar

#: Optional dependencies: a module that needs one is skipped (not failed) where it is missing.
OPTIONAL = ("laion_clap", "transformers", "ray", "datasets", "pyarrow", "huggingface_hub", "gradio")

#: Modules whose headline examples must exist (and so run), not merely pass.
WITH_EXAMPLES = {"aar.generator", "aar.tokenizer", "aar.sampling", "aar.sampling_options", "aar.placement",
                 "aar.editing", "aar.nn.transformer", "aar.nn.kv_cache", "aar.demo.pictures",
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
    for test in finder.find(module, name, globs=vars(module).copy()):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples in {name} failed"
    assert results.attempted > 0 or name not in WITH_EXAMPLES
