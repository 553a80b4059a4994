"""Evaluation of aar models: reconstruction scores of a tokenizer, FAD/ISc/KL of a generator's samples
across guidance values, and FAD/KL between two folders of audio. The metrics are in :mod:`aar.metrics`;
``aar eval`` is the command line (docs/evaluation.md).

Owns: ``sets`` (folders of audio as evaluation sets), ``round_trip`` (a tokenizer's reconstruction
scores, window by window), ``guidance_sweep`` (a generator's FAD/ISc/KL per guidance value),
``compare`` (two folders), ``distributed`` (the same work across a Ray cluster), ``plot`` (the
sweep's figure).
May import: ``aar.metrics``, ``aar.data`` (batches and runners), the models and what lies below them.
"""

from aar.evaluation.compare import ComparisonReport, compare_sets
from aar.evaluation.guidance_sweep import GenerationReport, GuidancePoint, evaluate_generation
from aar.evaluation.round_trip import FileScores, ReconstructionReport, evaluate_reconstruction
from aar.evaluation.sets import FileError

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
