"""``evaluate_reconstruction``: how closely a SAT tokenizer reproduces a set of files, window by window.

The paper scores SAT on evaluation audio "divided into segments matching the window size of the
model". Each file is made mono (channels averaged) and resampled to the model's rate, encoded and
decoded as a whole (the tokenizer works window by window, so this equals coding each window alone),
and both signals are cut into the model's windows. The last window of a file is zero-padded for the
model, but scored on its real samples only: padding never enters a score. A tail shorter than
``min_tail`` samples (default 0.1 s) is left unscored, as ``unscored_samples`` records: on a few
samples the scores mean nothing (SI-SDR of one sample is infinite, whatever the reconstruction).
Each window is one scored segment: a file's score is the mean over its windows, the aggregate the
mean over every window of every file.

Legend: B batch, W windows, T samples, D embedding size.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from aar.evaluation.sets import FILE_ERRORS, FileError, Report, describe, embed_audio, list_audio
from aar.metrics.protocols import PLAIN, Protocol, get_protocol

if TYPE_CHECKING:
    from aar.metrics import EmbeddingExtractor
    from aar.tokenizer import SATTokenizer

logger = logging.getLogger(__name__)

#: The scores every window gets, in the order tables show them.
METRICS = ("mel_distance", "stft_distance", "si_sdr")
#: Default shortest final window scored: 0.1 s at 24 kHz.
MIN_TAIL = 2400


@dataclass(frozen=True)
class FileScores:
    """The scores of one file: means over its windows.

    Attributes:
        path: The file.
        seconds: Its length at the model's rate.
        windows: Windows scored.
        unscored_samples: Samples of a tail shorter than ``min_tail`` (not scored).
        mel_distance: Mean mel distance over the windows.
        stft_distance: Mean multi-resolution STFT distance.
        si_sdr: Mean SI-SDR in dB.
    """

    path: str
    seconds: float
    windows: int
    unscored_samples: int
    mel_distance: float
    stft_distance: float
    si_sdr: float


@dataclass(frozen=True)
class ReconstructionReport(Report):
    """What :func:`evaluate_reconstruction` measured.

    Attributes:
        model: The tokenizer's name or path as given, or None.
        fingerprint: A hash of every weight of the tokenizer (encoder, quantizer, decoder) and its
            class: a fine-tuned encoder or decoder reports another value.
        sample_rate: The model's rate (Hz); every score is taken at it.
        window: Samples per window.
        files: Per-file scores, in input order.
        errors: Files that could not be read or scored.
        windows: Windows scored in all.
        mel_distance: Mean over all windows.
        stft_distance: Mean over all windows.
        si_sdr: Mean over all windows, in dB.
        fad: Fréchet distance between the embeddings of the original and reconstructed windows, or
            None when no extractor was given or too few windows were scored.
        fad_unavailable: Why ``fad`` is None despite an extractor, else None.
        extractor: The extractor's name, or None.
        codes_fingerprint: The tokenizer's ``fingerprint()``: its config and codebooks only (which
            tokens mean what, as codes files check).
        fad_warning: Why the FAD says little (too few windows for the embedding size), else None.
        protocol: The protocol's name, settings and each metric's reference tool.
    """

    model: str | None
    fingerprint: str
    sample_rate: int
    window: int
    files: tuple[FileScores, ...]
    errors: tuple[FileError, ...]
    windows: int
    mel_distance: float
    stft_distance: float
    si_sdr: float
    fad: float | None = None
    fad_unavailable: str | None = None
    extractor: str | None = None
    codes_fingerprint: str | None = None
    fad_warning: str | None = None
    protocol: dict[str, Any] = field(default_factory=dict)



def weights_hash(tokenizer) -> str:
    """The report's fingerprint: a hash of every weight (``aar.metrics.weights_fingerprint``), or, for
    a tokenizer that is not a module (a stand-in), its own ``fingerprint()``."""
    from aar import metrics

    if isinstance(tokenizer, torch.nn.Module):
        return metrics.weights_fingerprint(tokenizer)
    return tokenizer.fingerprint()


def _windows(wav_11T: torch.Tensor, window: int, min_tail: int) -> list[torch.Tensor]:
    """The full windows (W, 1, window) as one batch, then the scored tail (1, 1, r) if any."""
    T = wav_11T.shape[-1]
    full = T // window
    parts = [wav_11T[..., : full * window].reshape(full, 1, window)] if full else []
    tail = T - full * window
    if tail >= min_tail:
        parts.append(wav_11T[..., full * window :])
    return parts


def score_windows(ref_B1T: torch.Tensor, est_B1T: torch.Tensor, sample_rate: int,
                  protocol: Protocol | str | None = None) -> dict[str, torch.Tensor]:
    """Every metric of :data:`METRICS` on a batch of window pairs, as the protocol defines them:
    name -> (B,) float64."""
    from aar import metrics

    protocol = get_protocol(protocol)
    ref, est = ref_B1T.float(), est_B1T.float()
    scores = {
        "mel_distance": metrics.mel_distance(ref, est, sample_rate=sample_rate, definition=protocol.mel),
        "stft_distance": metrics.stft_distance(ref, est, sample_rate=sample_rate, definition=protocol.stft),
        "si_sdr": metrics.si_sdr(ref, est),
    }
    return {name: value.detach().to("cpu", torch.float64).reshape(-1) for name, value in scores.items()}


@dataclass(frozen=True)
class FileResult:
    """One file reconstructed and scored: what a runner yields for it.

    Attributes:
        path: The file.
        samples: Its length T at the model's rate.
        unscored_samples: Samples of a tail shorter than ``min_tail``.
        scores: Metric name -> (W,) float64 per-window scores, for every name of :data:`METRICS`.
        emb_ref: (n, D) float64 embeddings of the original windows, or None without an extractor.
        emb_est: (n, D) float64 embeddings of the reconstructed windows, or None.
    """

    path: str
    samples: int
    unscored_samples: int
    scores: dict[str, torch.Tensor]
    emb_ref: torch.Tensor | None = None
    emb_est: torch.Tensor | None = None

    def file_scores(self, sample_rate: int) -> FileScores:
        """The per-file means, as the report lists them."""
        return FileScores(self.path, self.samples / sample_rate, len(self.scores["si_sdr"]),
                          self.unscored_samples, **{m: float(self.scores[m].mean()) for m in METRICS})


def reconstruct_file(tokenizer: SATTokenizer, path, *, extractor: EmbeddingExtractor | None = None,
                     min_tail: int = MIN_TAIL, batch_size: int | None = None,
                     protocol: Protocol | str | None = None) -> FileResult:
    """Encode and decode one file and score its windows (see the module docstring).

    Raises:
        ValueError: the file is too short to give one scored window, or holds NaN samples.
        OSError: it cannot be read.
    """
    window, rate = tokenizer.config.window, tokenizer.sample_rate
    ref_11T = PLAIN.load(path, rate).to(tokenizer.device)
    est_11T = tokenizer.decode(tokenizer.encode(ref_11T, rate, batch_size=batch_size), batch_size=batch_size)
    pairs = list(zip(_windows(ref_11T, window, min_tail), _windows(est_11T, window, min_tail)))
    if not pairs:
        raise ValueError(f"too short to score: {ref_11T.shape[-1]} samples at {rate} Hz, "
                         f"fewer than min_tail={min_tail}")
    protocol = get_protocol(protocol)
    per_pair = [score_windows(r, e, rate, protocol) for r, e in pairs]
    T = ref_11T.shape[-1]
    scored_samples = sum(r.shape[0] * r.shape[-1] for r, _ in pairs)
    emb_ref = emb_est = None
    if extractor is not None:
        emb_ref = torch.cat([embed_audio(r.cpu(), rate, extractor, protocol.loading) for r, _ in pairs])
        emb_est = torch.cat([embed_audio(e.cpu(), rate, extractor, protocol.loading) for _, e in pairs])
    return FileResult(str(path), T, T - scored_samples,
                      {m: torch.cat([s[m] for s in per_pair]) for m in METRICS}, emb_ref, emb_est)


def _window_fad(emb_ref: torch.Tensor, emb_est: torch.Tensor, windows: int,
                protocol: Protocol) -> tuple[float | None, str | None]:
    """FAD of the windows' embeddings (N, D), and None or why there is none. Under per-file statistics
    (``fadtk``) each window is one clip, which needs one embedding per window: true for 1-s windows,
    which VGGish pads to one example and the other extractors embed whole."""
    if protocol.statistics == "pooled":
        return protocol.frechet_distance([emb_ref], [emb_est]), None
    if emb_ref.shape[0] != windows or emb_est.shape[0] != windows:
        return None, (f"the {protocol.name} protocol scores each window as a clip and needs one embedding "
                      f"per window; {windows} windows gave {emb_ref.shape[0]} and {emb_est.shape[0]}")
    return protocol.frechet_distance(list(emb_ref[:, None]), list(emb_est[:, None])), None


def reconstruct_locally(paths, tokenizer: SATTokenizer, extractor: EmbeddingExtractor | None = None,
                        min_tail: int = MIN_TAIL, batch_size: int | None = None,
                        protocol: Protocol | str | None = None):
    """Reconstruct files one by one in this process: yields each file's FileResult or its FileError."""
    for path in paths:
        try:
            yield reconstruct_file(tokenizer, path, extractor=extractor, min_tail=min_tail,
                                   batch_size=batch_size, protocol=protocol)
        except FILE_ERRORS as err:
            yield FileError(str(path), describe(err))


def evaluate_reconstruction(
    tokenizer: SATTokenizer,
    paths,
    *,
    extractor: EmbeddingExtractor | None = None,
    min_tail: int = MIN_TAIL,
    batch_size: int | None = None,
    model: str | os.PathLike | None = None,
    runner=None,
    progress: bool = False,
    protocol: Protocol | str | None = None,
) -> ReconstructionReport:
    """Encode and decode each file, and score the reconstruction window by window.

    Args:
        tokenizer: The SAT tokenizer to judge.
        paths: A folder (searched recursively) or a list of audio files.
        extractor: An ``aar.metrics`` embedding extractor; given, FAD compares the embeddings of the
            original and reconstructed windows (each scored window is one clip).
        min_tail: Shortest final partial window scored, in samples at the model's rate.
        batch_size: Windows per forward pass of the tokenizer.
        model: A name for the report (e.g. the checkpoint path).
        runner: Where the files are reconstructed: a callable ``runner(paths, tokenizer, extractor,
            min_tail, batch_size, protocol)`` yielding what :func:`reconstruct_locally` yields, in
            input order; None runs in this process (``aar.evaluation.distributed.ray_reconstructor``
            runs on Ray).
        progress: Show a progress bar over files.
        protocol: An ``aar.metrics.protocols`` protocol or its name (default ``"paper"``): the mel and
            STFT definitions and how windows are prepared for the extractor.

    Returns:
        A :class:`ReconstructionReport`. Files that cannot be read, or are too short to give one
        scored window, are listed in ``errors`` and skipped.

    Raises:
        ValueError: ``min_tail`` is not an integer in [1, window], or no file could be scored.
        FileNotFoundError: ``paths`` names a folder that does not exist.

    Example:
        >>> report = evaluate_reconstruction(tok, "eval_clips/")  # doctest: +SKIP
        >>> report.mel_distance, report.files[0].si_sdr  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    from aar.evaluation.compare import fad_warning

    window, rate = tokenizer.config.window, tokenizer.sample_rate
    if isinstance(min_tail, bool) or not isinstance(min_tail, int) or not 1 <= min_tail <= window:
        raise ValueError(f"min_tail must be an integer in [1, {window}] samples, got {min_tail!r}")
    files = list_audio(paths) if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    scored: list[FileScores] = []
    errors: list[FileError] = []
    per_window: dict[str, list[torch.Tensor]] = {name: [] for name in METRICS}
    emb_ref: list[torch.Tensor] = []
    emb_est: list[torch.Tensor] = []
    protocol = get_protocol(protocol)
    results = (runner or reconstruct_locally)(files, tokenizer, extractor, min_tail, batch_size, protocol)
    for result in tqdm(results, total=len(files), desc="reconstruct", unit="file", disable=not progress):
        if isinstance(result, FileError):
            logger.info("skipping %s: %s", result.path, result.error)
            errors.append(result)
            continue
        for name in METRICS:
            per_window[name].append(result.scores[name])
        scored.append(result.file_scores(rate))
        if extractor is not None:
            emb_ref.append(result.emb_ref)
            emb_est.append(result.emb_est)
    if not scored:
        raise ValueError(f"no file could be scored ({len(errors)} failed): "
                         + "; ".join(f"{e.path}: {e.error}" for e in errors[:3]))
    overall = {name: float(torch.cat(per_window[name]).mean()) for name in METRICS}
    fad, why, warning = None, None if extractor is None else "FAD needs at least 2 scored windows", None
    if extractor is not None and sum(len(e) for e in emb_ref) >= 2:
        all_ref, all_est = torch.cat(emb_ref), torch.cat(emb_est)
        fad, why = _window_fad(all_ref, all_est, sum(f.windows for f in scored), protocol)
        warning = fad_warning(all_ref, all_est)
    return ReconstructionReport(
        model=None if model is None else str(model), fingerprint=weights_hash(tokenizer), sample_rate=rate,
        window=window, files=tuple(scored), errors=tuple(errors), windows=sum(f.windows for f in scored),
        fad=fad, fad_unavailable=why, extractor=None if extractor is None else extractor.name, **overall,
        codes_fingerprint=tokenizer.fingerprint(), fad_warning=warning,
        protocol=protocol.to_dict(),
    )
