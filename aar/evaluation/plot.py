"""The guidance-sweep figure: FAD and KL against the Inception Score, one point per guidance value."""

from __future__ import annotations

import os
from pathlib import Path

from aar.errors import require_extra
from aar.evaluation.guidance_sweep import GenerationReport
from aar.loading.files import atomic_path


def plot_guidance_sweep(report: GenerationReport, path: str | os.PathLike) -> Path:
    """Draw FAD vs ISc and KL vs ISc (as in the paper's figure), each point labelled with its cfg.

    Without a classifier (no ISc), FAD is drawn against the guidance value instead.

    Args:
        report: A report whose points carry an Inception Score (a classifier was given).
        path: The PNG to write (atomically).

    Returns:
        The written path.

    The figure is drawn on its own Agg canvas, without pyplot: the process's matplotlib backend (a
    notebook's, say) is left as it was.

    Raises:
        MissingExtraError: matplotlib is missing (``pip install "aar-audio[eval]"``); an ``ImportError``.
    """
    agg = require_extra("matplotlib.backends.backend_agg", "eval", "the guidance plot")
    Figure = require_extra("matplotlib.figure", "eval", "the guidance plot").Figure
    points = report.points
    by_isc = all(p.inception_score is not None for p in points)
    x_values = [p.inception_score if by_isc else p.cfg for p in points]
    panels = [("FAD", [p.fad for p in points])]
    if all(p.kl is not None for p in points):
        panels.append(("KL", [p.kl for p in points]))
    fig = Figure(figsize=(4.5 * len(panels), 3.6))
    agg.FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (label, values) in zip(axes[0], panels):
        ax.plot(x_values, values, marker="o")
        for p, x, y in zip(points, x_values, values):
            ax.annotate(f"cfg {p.cfg:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_xlabel("ISc" if by_isc else "cfg")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
