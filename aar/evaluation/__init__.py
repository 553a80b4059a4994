"""Evaluation of aar models: reconstruction scores of a tokenizer, FAD/ISc/KL of a generator's samples
across guidance values, and FAD/KL between two folders of audio. The metrics are in :mod:`aar.metrics`;
``aar eval`` is the command line (docs/evaluation.md)."""

from .compare import ComparisonReport, compare_sets
from .generate import GenerationReport, GuidancePoint, evaluate_generation
from .reconstruct import FileScores, ReconstructionReport, evaluate_reconstruction
from .sets import FileError

__all__ = [
    "ComparisonReport",
    "FileError",
    "FileScores",
    "GenerationReport",
    "GuidancePoint",
    "ReconstructionReport",
    "compare_sets",
    "evaluate_generation",
    "evaluate_reconstruction",
]
