"""aar: the Scale-level Audio Tokenizer (SAT) and next-scale AAR generation (arXiv 2408.09027)."""

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings

from aar.audio import load_audio
from aar.codes import AudioCodes
from aar.conditioning.clap import ClapEncoder
from aar.config import AARConfig, SATConfig
from aar.generator import AARGenerator
from aar.tokenizer import SATTokenizer
from aar.version import __version__

__all__ = [
    "AARConfig", "AARGenerator", "AudioCodes", "ClapEncoder", "SATConfig", "SATTokenizer", "__version__",
    "load_audio",
]

#: Modules of aar 0.1 that moved into the packages, old name -> new (deprecated; removed in 0.3).
MOVED_MODULES = {
    "aar.hub": "aar.loading.hub", "aar.convert": "aar.loading.official",
    "aar.codes_file": "aar.loading.codes_file",
    "aar.clap": "aar.conditioning.clap", "aar.conditions": "aar.conditioning.conditions",
    "aar.next_scale": "aar.generation.next_scale", "aar.sampling": "aar.generation.sampling",
    "aar.sampling_options": "aar.generation.options", "aar.scoring": "aar.generation.teacher_forcing",
    "aar.editing": "aar.generation.editing", "aar.long_generation": "aar.generation.long_generation",
    "aar.window_generator": "aar.generation.window", "aar.placement": "aar.precision.placement",
    "aar.nn.int8": "aar.precision.int8", "aar.nn.cpu": "aar.precision.cpu",
    "aar.nn.precision": "aar.precision.reduced",
    "aar.metrics.clap": "aar.metrics.clap_space", "aar.metrics.reconstruction": "aar.metrics.paired",
    "aar.metrics.optional": "aar.metrics.speech", "aar.evaluation.reconstruct": "aar.evaluation.round_trip",
    "aar.evaluation.generate": "aar.evaluation.guidance_sweep",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old module name as a view of the module that replaced it, with a DeprecationWarning."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED_MODULES else None

    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        new = MOVED_MODULES[module.__name__]
        warnings.warn(f"{module.__name__} moved to {new}; the old name will be removed in aar 0.3",
                      DeprecationWarning, stacklevel=2)
        module.__getattr__ = lambda attr: getattr(importlib.import_module(new), attr)
        module.__dir__ = lambda: dir(importlib.import_module(new))


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
