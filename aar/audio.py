"""Audio in and out: validation, integer PCM, mono mixdown, resampling, windows, and file I/O.

Legend: B batch, C channels, T samples, W windows.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torchaudio.functional as AF
from einops import rearrange

from aar.loading.files import atomic_path

#: Full-scale values of the integer PCM types that are converted to float in [-1, 1).
_PCM_SCALE = {torch.int16: 32768.0, torch.int32: 2147483648.0}
#: File formats written by ``write_audio`` (soundfile names), by extension.
AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
#: The sample encodings (soundfile subtypes) ``write_audio`` writes per format, the default first.
AUDIO_SUBTYPES = {"WAV": ("FLOAT", "PCM_16", "PCM_24"), "FLAC": ("PCM_16", "PCM_24"), "OGG": ("VORBIS",)}


#: Extensions of the audio files aar picks up in folders (``aar tokenize``, the examples), lower case.
#: Each is a container libsndfile reads; MP3 needs libsndfile 1.1 or newer (see :func:`load_audio`).
AUDIO_EXTENSIONS = (".aif", ".aiff", ".au", ".caf", ".flac", ".mp3", ".oga", ".ogg", ".opus", ".w64",
                    ".wav")
#: The input layouts every audio argument accepts, for docstrings and error messages.
AUDIO_LAYOUTS = "(T,) mono, (C, T) with any number of channels C, or a batch (B, C, T)"


def is_audio_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a regular file with one of :data:`AUDIO_EXTENSIONS` (any case)."""
    path = Path(path)
    return path.suffix.lower() in AUDIO_EXTENSIONS and path.is_file()


def _layout_error(name: str, shape: tuple[int, ...]) -> ValueError:
    rows, cols = shape
    hint = (f"pass {name}.T for one clip of {cols} channels (aar.load_audio returns (C, T)), or "
            f"{name}[:, None], shaped (B, 1, T), for a batch of {rows} mono clips")
    return ValueError(
        f"{name} has shape {shape}: a 2-D input is one clip (C, T), channels first, and this one has "
        f"more rows than samples, as soundfile's (frames, channels) layout does; {hint}"
    )


def as_audio_batch(wav, name: str = "wav") -> torch.Tensor:
    """Turn user audio into a float tensor shaped (B, C, T), refusing any layout it would have to guess.

    The one rule for audio input everywhere in aar, the API and the ``aar`` command alike: ``(T,)`` is
    one mono clip; ``(C, T)`` is one clip with C channels, any number of them (the layout
    :func:`load_audio` returns, so a 5.1 file's ``(6, T)`` is one clip); ``(B, C, T)`` is a batch of B
    clips with C channels each. A batch of mono clips is therefore ``(B, 1, T)``, never ``(B, T)``. A
    2-D input with more than two rows and more rows than samples is refused rather than guessed: it
    looks like soundfile's ``(frames, channels)`` arrays, which must be transposed (or read with
    :func:`load_audio`).

    Args:
        wav: A tensor or numpy array in one of those layouts. Float audio is taken as is; int16 and
            int32 PCM are scaled by their full-scale value to [-1, 1).
        name: Argument name for error messages.

    Returns:
        A floating-point tensor (B, C, T); float64 input is converted to float32.

    Raises:
        TypeError: not a tensor/array, or an unsupported dtype.
        ValueError: wrong rank, a 2-D shape (C, T) with C > 2 and C > T (a transposed array), no
            samples or channels, or NaN/Inf values.

    Example:
        >>> import numpy as np
        >>> as_audio_batch(np.zeros((2, 480), np.int16)).shape   # one stereo clip
        torch.Size([1, 2, 480])
        >>> as_audio_batch(np.zeros((480, 2), np.float32))        # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ValueError: wav has shape (480, 2): a 2-D input is one clip (C, T), channels first, and ...
    """
    if isinstance(wav, np.ndarray):
        if wav.dtype.kind not in "fiu":
            raise TypeError(
                f"{name} has numpy dtype {wav.dtype}; allowed: floating point, or int16/int32 PCM"
            )
        wav = torch.from_numpy(np.ascontiguousarray(wav))
    if not isinstance(wav, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(wav).__name__}")
    if wav.dtype in _PCM_SCALE:
        wav = wav.to(torch.float32) / _PCM_SCALE[wav.dtype]
    elif not wav.is_floating_point():
        raise TypeError(
            f"{name} has dtype {wav.dtype}; allowed: floating point, or int16/int32 PCM"
        )
    elif wav.dtype == torch.float64:
        wav = wav.to(torch.float32)
    if wav.ndim not in (1, 2, 3):
        raise ValueError(f"{name} must be {AUDIO_LAYOUTS}; got {wav.ndim} dims {tuple(wav.shape)}")
    if wav.ndim == 2 and wav.shape[0] > max(2, wav.shape[1]):
        raise _layout_error(name, tuple(wav.shape))
    wav = wav.reshape((1,) * (3 - wav.ndim) + tuple(wav.shape))
    if wav.numel() == 0:
        raise ValueError(f"{name} is empty: shape {tuple(wav.shape)}; need at least 1 sample")
    if not torch.isfinite(wav).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return wav


def check_sample_rate(sample_rate, name: str = "sample_rate") -> int:
    """Validate a sample rate: a positive integer number of Hz."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float, np.integer)):
        raise TypeError(f"{name} must be a positive integer (Hz), got {sample_rate!r}")
    if not 0 < sample_rate < float("inf") or sample_rate != int(sample_rate):  # NaN fails the first
        raise ValueError(f"{name} must be a positive integer (Hz), got {sample_rate!r}")
    return int(sample_rate)


def resampled_length(length: int, orig: int, new: int) -> int:
    """Samples after resampling ``length`` samples from ``orig`` to ``new`` Hz: ceil(T * new / orig)."""
    return -(-length * new // orig)


def to_mono(wav_BCT: torch.Tensor) -> torch.Tensor:
    """Average channels: (B, C, T) -> (B, 1, T)."""
    return wav_BCT if wav_BCT.shape[1] == 1 else wav_BCT.mean(dim=1, keepdim=True)


def resample(wav: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's sinc interpolation)."""
    if orig == new:
        return wav
    out = AF.resample(wav, orig, new)
    return out[..., : resampled_length(wav.shape[-1], orig, new)]


def split_windows(wav_B1T: torch.Tensor, window: int) -> torch.Tensor:
    """Cut into consecutive windows, zero-padding the last: (B, 1, T) -> (B * W, 1, window).

    Windows are window-major within each item: row ``b * W + w`` is window ``w`` of item ``b``.
    """
    B, _, T = wav_B1T.shape
    W = -(-T // window)
    padded = torch.nn.functional.pad(wav_B1T, (0, W * window - T))
    return rearrange(padded, "b c (w t) -> (b w) c t", w=W)


def load_audio(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """Read an audio file as a (C, T) float32 tensor and its sample rate.

    This is the reader behind the ``aar`` command, ``aar tokenize`` and the examples. Every format
    the installed libsndfile decodes is read (WAV, FLAC, OGG/Vorbis, Opus, AIFF, MP3 with libsndfile
    1.1 or newer, ...), at the file's own rate and channel count; integer PCM becomes float in [-1, 1).
    The result is already in the layout ``SATTokenizer.encode`` and the other audio arguments expect.

    Args:
        path: The audio file.

    Returns:
        ``(wav, sample_rate)``: ``wav`` a float32 tensor shaped (C, T) (C = 1 for mono), ``sample_rate``
        in Hz.

    Raises:
        FileNotFoundError: no such file (the message names the path).
        ValueError: a folder, a file that cannot be decoded (or an MP3 the installed libsndfile
            cannot read), or a file that holds no samples; the message names the path.

    Example:
        >>> import aar, tempfile, numpy as np, soundfile as sf
        >>> path = tempfile.mkdtemp() + "/stereo.flac"
        >>> sf.write(path, np.zeros((4410, 2), np.float32), 44100)   # soundfile: (frames, channels)
        >>> wav, sr = aar.load_audio(path)
        >>> tuple(wav.shape), wav.dtype, sr
        ((2, 4410), torch.float32, 44100)
    """
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {path}")
    if path.is_dir():
        raise ValueError(f"cannot read audio from {path}: it is a folder, not a file")
    if path.suffix.lower() == ".mp3" and "MP3" not in sf.available_formats():
        raise ValueError(
            f"cannot read {path}: the installed libsndfile {sf.__libsndfile_version__} cannot decode "
            "MP3 (libsndfile 1.1 or newer can; soundfile 0.12+ wheels bundle one); convert the file to "
            "WAV or FLAC, or upgrade soundfile"
        )
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (T, C)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, TypeError...
        raise ValueError(
            f"cannot read audio file {path}: it is damaged or not in a format libsndfile "
            f"{sf.__libsndfile_version__} decodes (libsndfile says: {err})"
        ) from None
    if data.shape[0] == 0:
        raise ValueError(f"audio file {path} holds no samples")
    return torch.from_numpy(np.ascontiguousarray(data.T)), int(sr)


def read_audio(path: str | os.PathLike) -> tuple[torch.Tensor, int]:
    """Deprecated: :func:`load_audio` under its earlier name; it warns, and will be removed."""
    import warnings

    warnings.warn("aar.audio.read_audio is deprecated; use aar.load_audio (the same reader)",
                  DeprecationWarning, stacklevel=2)
    return load_audio(path)


def write_audio(path: str | os.PathLike, wav: torch.Tensor, sample_rate: int, *,
                subtype: str | None = None) -> Path:
    """Write audio atomically; the format follows the extension, the sample encoding ``subtype``.

    Float WAV (the default for ``.wav``) keeps every value, also outside [-1, 1]. The integer
    encodings (PCM_16, PCM_24; FLAC is always integer) and Vorbis hold only [-1, 1]: louder samples
    are clipped to it, and an :class:`aar.errors.ClippingWarning` says so, with the peak. Nothing is
    normalised: divide by the peak first to keep the waveform's shape.

    The file gets the permissions an ordinary ``open(path, "w")`` gives (the umask, or the mode of the
    file it replaces).

    Args:
        path: Output file: ``.wav``, ``.flac`` or ``.ogg``.
        wav: Audio shaped (T,), (C, T) (the input rule of :func:`as_audio_batch`) or (1, C, T), a
            batch of one: ``decode`` and ``generate`` return (B, 1, T), so ``wav_B1T[b]`` or a whole
            batch of one can be written.
        sample_rate: Rate in Hz.
        subtype: Sample encoding, a soundfile subtype: for ``.wav`` ``"FLOAT"`` (default, 32-bit
            float), ``"PCM_16"`` (what most tools expect) or ``"PCM_24"``; for ``.flac`` ``"PCM_16"``
            (default) or ``"PCM_24"``; for ``.ogg`` ``"VORBIS"``.

    Returns:
        The written path.

    Raises:
        ValueError: an extension or subtype not listed above, or a shape outside the rule.
        IsADirectoryError: ``path`` is a folder.

    Example:
        >>> import tempfile, torch
        >>> out = write_audio(tempfile.mkdtemp() + "/tone.wav", torch.zeros(1, 1, 2400), 24000,
        ...                   subtype="PCM_16")
        >>> import soundfile as sf; sf.info(str(out)).subtype
        'PCM_16'
    """
    import soundfile as sf

    path = Path(path)
    fmt = AUDIO_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot write {path.name!r}: allowed extensions are {sorted(AUDIO_FORMATS)}"
        )
    allowed = AUDIO_SUBTYPES[fmt]
    subtype = allowed[0] if subtype is None else subtype
    if subtype not in allowed:
        raise ValueError(f"cannot write {path.name!r} as subtype {subtype!r}: {fmt} allows {list(allowed)}")
    data = wav.detach().to("cpu", torch.float32)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    data = data.reshape(1, -1) if data.ndim == 1 else data
    if data.ndim != 2:
        raise ValueError(
            f"audio to write must be (T,), (C, T) or (1, C, T), got shape {tuple(wav.shape)}: write a "
            "batch one item at a time (wav[b])"
        )
    if data.shape[0] > max(2, data.shape[1]):
        raise _layout_error("wav", tuple(data.shape))
    if not torch.isfinite(data).all():
        raise ValueError(f"cannot write {path.name!r}: the audio contains NaN or Inf values")
    peak = float(data.abs().max()) if data.numel() else 0.0
    if subtype != "FLOAT" and peak > 1.0:
        import warnings

        from aar.errors import ClippingWarning

        warnings.warn(ClippingWarning(
            f"{path.name}: peak {peak:.3g} lies outside [-1, 1]; {fmt} {subtype} clips it (float WAV, "
            "subtype FLOAT, keeps it; or divide by the peak first)"
        ), stacklevel=2)
        data = data.clamp(-1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data.T.numpy(), sample_rate, format=fmt, subtype=subtype)
    return path
