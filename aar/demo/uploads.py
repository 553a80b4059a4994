"""Files that reach the demo page: checked against the limits and the app's folder before they are read.

Legend: C channels, T samples, D CLAP dim.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from aar.audio import load_audio
from aar.demo.settings import DemoSettings
from aar.errors import UploadError


def inside(path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """``path`` resolved (links followed), refused unless it lies inside ``folder``."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(Path(folder).resolve()):
        raise UploadError(path, "only files uploaded through the page are read")
    return resolved


def _checked_file(path, folder, settings: DemoSettings) -> Path:
    if path is None or path == "":
        raise UploadError("(no file)", "upload a file first")
    resolved = inside(path, folder)
    if not resolved.is_file():
        raise UploadError(path, "the upload is missing (upload it again)")
    size = resolved.stat().st_size
    if size > settings.max_upload_bytes:
        raise UploadError(path, f"{size / 1e6:.1f} MB is over the upload limit of "
                                f"{settings.max_upload_mb:g} MB")
    if size == 0:
        raise UploadError(path, "the file is empty")
    return resolved


def read_clip(path, folder, settings: DemoSettings) -> tuple[torch.Tensor, int]:
    """An uploaded audio file as (C, T) float32 and its rate, within the size and length limits.

    Raises:
        UploadError: no file, outside ``folder``, too large, not audio, no samples, or longer than
            ``settings.max_clip_seconds`` (checked from the header, before the samples are read).
    """
    import soundfile as sf

    resolved = _checked_file(path, folder, settings)
    try:
        info = sf.info(str(resolved))
    except Exception:
        raise UploadError(path, "not an audio file that libsndfile can read (wav, flac, ogg, ...)") from None
    if info.frames > 0 and info.duration > settings.max_clip_seconds:
        raise UploadError(path, f"the clip lasts {info.duration:.1f} s; the limit is "
                                f"{settings.max_clip_seconds:g} s")
    try:
        wav_CT, rate = load_audio(resolved)
    except ValueError as err:
        raise UploadError(path, str(err).replace(str(resolved), "the file")) from None
    if wav_CT.shape[-1] / rate > settings.max_clip_seconds:
        raise UploadError(path, f"the clip lasts {wav_CT.shape[-1] / rate:.1f} s; the limit is "
                                f"{settings.max_clip_seconds:g} s")
    if not torch.isfinite(wav_CT).all():
        raise UploadError(path, "the clip holds NaN or infinite samples")
    return wav_CT, rate


def read_vector(path, folder, settings: DemoSettings, dim: int) -> torch.Tensor:
    """An uploaded ``numpy.save`` file holding one CLAP vector, (D,) or (1, D), as (1, D) float32.

    Raises:
        UploadError: no file, outside ``folder``, too large, not a float array (pickles are never
            loaded), or another shape.
    """
    resolved = _checked_file(path, folder, settings)
    try:
        array = np.load(resolved, allow_pickle=False)
    except Exception:
        raise UploadError(path, "not a numpy.save file (.npy) holding a float array") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind != "f":
        raise UploadError(path, f"a CLAP vector must hold floats, got {getattr(array, 'dtype', type(array))}")
    if array.shape not in ((dim,), (1, dim)):
        raise UploadError(path, f"expected one CLAP vector shaped ({dim},) or (1, {dim}), got {array.shape}")
    if not np.isfinite(array).all():
        raise UploadError(path, "the CLAP vector holds NaN or infinite values")
    return torch.from_numpy(array.astype(np.float32)).reshape(1, dim)
