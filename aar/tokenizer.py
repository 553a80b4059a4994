"""``SATTokenizer``: audio <-> 16 scales of tokens per one-second window.

Legend: B batch, C channels, T samples, W windows per item, N windows in a processing batch,
S scales, s_i tokens of scale i, D latent ``dimension``, F frames per window (75).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from aar.audio import (
    as_audio_batch,
    check_sample_rate,
    resample,
    resampled_length,
    split_windows,
    to_mono,
)
from aar.codes import AudioCodes, as_scale_list
from aar.config import SATConfig
from aar.errors import check_positive_int
from aar.loading import hub
from aar.loading.digest import weights_digest
from aar.loading.hub import HubKwargs, Unpack
from aar.loading.native import (
    adopt_state,
    loading_request,
    naming,
    native_config,
    read_native,
    skip_init,
    write_native,
)
from aar.loading.official import convert_sat_state_dict, infer_sat_config, read_checkpoint
from aar.nn.quantizer import ScaleQuantizer
from aar.nn.seanet import SEANetDecoder, SEANetEncoder
from aar.precision.policy import tokenizer_dtype

#: Windows per forward pass unless the caller says otherwise (see docs/performance.md).
DEFAULT_WINDOW_BATCH = 4

class SATTokenizer(nn.Module):
    """The Scale-level Audio Tokenizer: SEANet encoder, 16-scale residual quantizer, SEANet decoder.

    Audio is cut into one-second windows (the last zero-padded); each window becomes S scales of
    tokens, coarse to fine (1, 2, 4, ... 75 tokens: 455 per window).

    Args:
        config: The hyperparameters; ``SATConfig()`` is the released ``SAT_d128_lat128``.

    Example:
        >>> import torch
        >>> from aar import SATTokenizer, SATConfig
        >>> tok = SATTokenizer(SATConfig(n_filters=4, dimension=16, latent_dim=8)).eval()
        >>> codes = tok.encode(torch.randn(2, 1, 30000), sample_rate=24000)  # (B, C, T): two mono clips
        >>> len(codes), tuple(codes[0].shape), tuple(codes[-1].shape)
        (16, (2, 2, 1), (2, 2, 75))
        >>> tuple(tok.decode(codes).shape)
        (2, 1, 30000)
    """

    def __init__(self, config: SATConfig) -> None:
        super().__init__()
        self.config = config
        seanet = dict(
            n_filters=config.n_filters, dimension=config.dimension, ratios=config.ratios,
            n_residual_layers=config.n_residual_layers, lstm_layers=config.lstm_layers,
            kernel_size=config.kernel_size, last_kernel_size=config.last_kernel_size,
            residual_kernel_size=config.residual_kernel_size,
            dilation_base=config.dilation_base, compress=config.compress,
        )
        self.encoder = SEANetEncoder(**seanet)
        self.quantizer = ScaleQuantizer(
            config.dimension, config.latent_dim, config.scales, config.codebook_size,
            config.phi_index, config.phi_kernel, config.phi_ratio,
        )
        self.decoder = SEANetDecoder(**seanet)
        self.window_batch_size = DEFAULT_WINDOW_BATCH
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, *, filename: str | None = None,
        device: torch.device | str | None = None, dtype: torch.dtype | None = None,
        precision: str | None = None, **hub_kwargs: Unpack[HubKwargs],
    ) -> SATTokenizer:
        """Load a tokenizer from an official ``.pth``, a native folder, or the Hub.

        Args:
            name_or_path: ``"qiuk6/AAR"`` (``SAT_d128_lat128.pth``), another Hub repo id, a local
                ``.pth`` file, or a folder written by ``save_pretrained`` (a generator folder works
                too: its ``tokenizer/`` is used).
            filename: A file to load from the folder or repo instead of the default, e.g.
                ``"SAT_bs_1536_d1024_lat64.pth"``.
            device: Where to put the model.
            dtype: Parameter dtype: float32 (default), bfloat16, float16 or float64, or its name.
                The codebook search runs in float32 and outputs are float32 whatever it is.
            precision: "fp32" (default), "bf16" (as ``dtype=torch.bfloat16``) or "auto" (float32,
                whose codes ``encode`` keeps; see ``aar.precision.tokenizer_dtype``).
            **hub_kwargs: The Hub options of :class:`aar.loading.hub.HubKwargs` (``revision``, ``cache_dir``,
                ``local_files_only``, ``token``).

        Returns:
            The tokenizer, in eval mode.

        Raises:
            FileNotFoundError: nothing at ``name_or_path``.
            WrongModelKindError: a generator ``.pth``, a CLAP checkpoint or another kind of folder.
            CheckpointError: unreadable file, a config that does not parse, or
                missing/unexpected/mis-shaped keys (named, with the file).
            HubUnreachableError: a Hub id, the Hub unreachable and the files not cached.
            ValueError: an unknown ``device``, ``dtype`` or ``precision``.
            TypeError: an unknown keyword.
        """
        request = loading_request(device=device, dtype=dtype, **hub_kwargs)
        dtype = tokenizer_dtype(precision, request.dtype)  # before any loading
        source = request.resolve(name_or_path, "sat", filename)
        if source.layout == "official":
            _, official = read_checkpoint(source.path, "sat")
            with naming(source.path):
                state = convert_sat_state_dict(official)
                config = infer_sat_config(state)
        else:
            folder = source.path
            if native_config(folder, "sat", accept=("aar",))[0] == "aar":  # a generator folder
                folder = folder / hub.TOKENIZER_SUBFOLDER
            config, state = read_native(folder, SATConfig)
        with skip_init():  # no random init: every tensor comes from the checkpoint
            model = cls(config)
        adopt_state(model, state, str(source.path))
        return model.to(device=request.device, dtype=dtype).eval()

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``folder``."""
        return write_native(folder, self.config.to_dict(), self.state_dict())

    @property
    def sample_rate(self) -> int:
        """Rate of the audio the model reads and writes (24 kHz)."""
        return self.config.sample_rate

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def fingerprint(self) -> str:
        """Short hash of the config and codebooks: which tokens mean what.

        Codes files and tokenized corpora record it; the value is the same as in every release since
        0.1 (the codebooks hashed as float32, so the precision a tokenizer runs in does not change it).
        ``aar.metrics.weights_fingerprint(tokenizer)`` hashes every weight instead.
        """
        if self._fingerprint is None:
            books = {f"quantizer.codebooks.{i}.weight": book.weight.float()
                     for i, book in enumerate(self.quantizer.codebooks)}
            self._fingerprint = weights_digest(books, self.config.to_dict(), layout=False)
        return self._fingerprint

    # ------------------------------------------------------------------ one batch of windows
    @torch.no_grad()
    def encode_windows(self, wav_N1T: torch.Tensor) -> list[torch.Tensor]:
        """Tokens of N one-second windows: (N, 1, window) -> S LongTensors (N, s_i)."""
        e_NDF = self.encoder(wav_N1T.to(self.device, self.dtype))
        return self.quantizer.encode(e_NDF)

    @torch.no_grad()
    def decode_windows(self, codes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Audio of N windows from their first k scales: k tensors (N, s_i) -> (N, 1, window)."""
        f_NEF = self.quantizer.decode_latent([c.to(self.device) for c in codes])
        return self.decoder(self.quantizer.to_decoder(f_NEF)).float()

    # ------------------------------------------------------------------ public API
    @torch.no_grad()
    def encode(
        self,
        wav,
        sample_rate: int,
        *,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> AudioCodes:
        """Tokenize audio of any length.

        Args:
            wav: Tensor or numpy array: (T,) mono, (C, T) with C = 1 or 2 channels, or a batch
                (B, C, T); float, or int16/int32 PCM. Channels are averaged to mono. Any other 2-D
                shape raises: transpose soundfile's (frames, channels) arrays (or read files with
                ``aar.load_audio``), and shape a batch of mono clips (B, 1, T).
            sample_rate: Rate of ``wav`` in Hz, required (a tensor does not know its rate): pass
                what ``aar.load_audio`` returned, or ``tok.sample_rate`` for audio already at 24 kHz.
                Resampled to 24 kHz if different.
            batch_size: Windows per forward pass (memory stays bounded for long files).
            progress: Show a progress bar over window batches.

        Returns:
            ``AudioCodes``: S LongTensors, ``codes[i]`` shaped (B, W, s_i), with ``length`` (samples
            at 24 kHz, ``ceil(T * 24000 / sample_rate)``) and the input ``sample_rate``.

        Raises:
            ValueError: a layout outside the rule above (the message names the shape and the fix),
                no samples, NaN/Inf values, or a sample rate that is not a positive integer.
            TypeError: not a tensor or array, an unsupported dtype, or a sample rate that is not a
                number.
        """
        if sample_rate is None:
            raise TypeError(
                "encode needs sample_rate, the rate of wav in Hz: tok.encode(wav, sr) with wav, sr = "
                f"aar.load_audio(path), or sample_rate={self.sample_rate} for audio already at 24 kHz"
            )
        rate = check_sample_rate(sample_rate)
        wav_BCT = as_audio_batch(wav)
        wav_B1T = resample(to_mono(wav_BCT).to(self.device), rate, self.sample_rate)
        length = resampled_length(wav_BCT.shape[-1], rate, self.sample_rate)
        B = wav_B1T.shape[0]
        windows_N1T = split_windows(wav_B1T, self.config.window)
        per_scale = [[] for _ in self.config.scales]
        size = self.window_batch_size if batch_size is None else batch_size
        for chunk in _batches(windows_N1T, size, progress, "encode"):
            for si, idx in enumerate(self.encode_windows(chunk)):
                per_scale[si].append(idx)
        codes = tuple(torch.cat(c).view(B, -1, c[0].shape[-1]) for c in per_scale)
        return AudioCodes(codes, length=length, sample_rate=rate)

    @torch.no_grad()
    def decode(
        self,
        codes: AudioCodes | Sequence[torch.Tensor],
        *,
        length: int | None = None,
        num_scales: int | None = None,
        batch_size: int | None = None,
        progress: bool = False,
    ) -> torch.Tensor:
        """Audio from codes.

        Args:
            codes: ``AudioCodes``, or a list of S tensors shaped (B, W, s_i) or (B, s_i) (one window).
            length: Samples to return per item; defaults to ``codes.length``, or W windows.
            num_scales: Decode from the first k scales only (a coarse preview); default all.
            batch_size: Windows per forward pass.
            progress: Show a progress bar over window batches.

        Returns:
            Float32 audio (B, 1, length) at 24 kHz, on the model's device, whatever its dtype.
        """
        scales = self.config.scales
        k = len(scales) if num_scales is None else _check_num_scales(num_scales, len(scales))
        if isinstance(codes, AudioCodes) and length is None:
            length = codes.length
        levels = self.check_codes(codes, allow=k)
        B, W = levels[0].shape[:2]
        if length is None:
            length = W * self.config.window
        most = W * self.config.window
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= most:
            raise ValueError(
                f"length must be an integer in [1, {most}] for {W} window(s), got {length!r}"
            )
        flat = [c.reshape(B * W, -1) for c in levels[:k]]
        step = _check_batch_size(self.window_batch_size if batch_size is None else batch_size)
        pieces = [
            self.decode_windows([c[i : i + step] for c in flat])
            for i in _progress(range(0, B * W, step), progress, "decode")
        ]
        audio_B1T = rearrange(torch.cat(pieces), "(b w) c t -> b c (w t)", b=B)
        return audio_B1T[..., :length]

    def check_codes(self, codes, allow: int | None = None) -> list[torch.Tensor]:
        """Validate codes against this model; returns S (or ``allow``) LongTensors shaped (B, W, s_i).

        Raises:
            TypeError: not a sequence of integer tensors.
            ValueError: wrong number of scales, wrong shape for a scale, or ids outside [0, V).
        """
        levels = as_scale_list(codes)
        scales, V = self.config.scales, self.config.codebook_size
        if len(levels) not in (len(scales), allow):
            allowed = len(scales) if allow in (None, len(scales)) else f"{len(scales)} or {allow}"
            raise ValueError(f"expected {allowed} scales of codes, got {len(levels)}")
        if levels[0].ndim == 2:
            levels = [c.unsqueeze(1) for c in levels]
        lead = levels[0].shape[:2]
        for i, c in enumerate(levels):
            if c.ndim != 3 or c.shape[-1] != scales[i] or c.shape[:2] != lead:
                raise ValueError(
                    f"codes[{i}] must be shaped (B, W, {scales[i]}) or (B, {scales[i]}) with the same "
                    f"B, W as codes[0] {tuple(lead)}, got {tuple(c.shape)}"
                )
            if c.numel() and (int(c.min()) < 0 or int(c.max()) >= V):
                raise ValueError(
                    f"codes[{i}] holds ids in [{int(c.min())}, {int(c.max())}]; allowed: [0, {V})"
                )
        if lead[0] == 0 or lead[1] == 0:
            raise ValueError(f"codes are empty: batch and windows are {tuple(lead)}")
        return [c.long() for c in levels]  # embedding lookups take int64 (or int32) ids only


def _check_num_scales(num_scales, total: int) -> int:
    if isinstance(num_scales, bool) or not isinstance(num_scales, int) or not 1 <= num_scales <= total:
        raise ValueError(f"num_scales must be an integer in [1, {total}], got {num_scales!r}")
    return num_scales


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="batch")


def _check_batch_size(size) -> int:
    return check_positive_int("batch_size", size)


def _batches(x: torch.Tensor, size: int, progress: bool, desc: str):
    _check_batch_size(size)
    for start in _progress(range(0, x.shape[0], size), progress, desc):
        yield x[start : start + size]
