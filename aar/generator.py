"""``AARGenerator``: CLAP-conditioned next-scale generation of one-second windows of audio.

Legend: B batch, D CLAP dim (512), S scales (16), s_i tokens of scale i, L tokens per window (455),
V codebook size, E codebook vector width (latent_dim), F frames per window (75).

The generator pairs the transformer with its tokenizer and is the public face of both: loading and
saving, conditions and the entry points of generation. The work lies in ``aar.generation`` (the S-step
loop in ``next_scale``, the sampling options, editing, long generation, teacher forcing),
``aar.conditioning`` (CLAP conditions) and ``aar.precision`` (device, dtype and precision).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from aar.codes import AudioCodes
from aar.conditioning.conditions import check_clap_embedding, resolve_condition
from aar.config import AARConfig
from aar.errors import CheckpointError
from aar.generation import editing, long_generation
from aar.generation.next_scale import ScaleProgress, sample_scales
from aar.generation.options import DEFAULT_CFG, DEFAULT_TOP_K, DEFAULT_TOP_P, SamplingOptions, check_callback
from aar.generation.sampling import RandomStreams, Seed, make_generator
from aar.generation.teacher_forcing import TeacherForcing
from aar.loading import hub
from aar.loading.hub import HubKwargs, Unpack
from aar.loading.native import adopt_state, loading_request, naming, read_native, skip_init, write_native
from aar.loading.official import convert_aar_state_dict, infer_aar_config, read_checkpoint
from aar.nn.transformer import AARTransformer
from aar.precision.placement import GeneratorPlacement
from aar.precision.policy import apply_precision, resolve_precision, set_weight_dtype
from aar.tokenizer import SATTokenizer

__all__ = ["AARGenerator", "DEFAULT_CFG", "DEFAULT_TOP_K", "DEFAULT_TOP_P"]


class AARGenerator(GeneratorPlacement, TeacherForcing, nn.Module):
    """The AAR next-scale transformer together with its paired tokenizer.

    Args:
        config: Transformer hyperparameters; ``AARConfig()`` is the released ``AAR_d16_bs2048``.
        tokenizer: The SAT whose codebooks embed the tokens and whose decoder makes the audio.

    Attributes:
        transformer: The ``AARTransformer``.
        tokenizer: The paired ``SATTokenizer``.
        clap_encoder: The ``ClapEncoder`` used for ``prompt=`` and ``audio=``; loaded on first use
            (laion-clap backend) unless you assign one.

    Example:
        >>> import torch
        >>> from aar import AARConfig, AARGenerator, SATConfig, SATTokenizer
        >>> tok = SATTokenizer(SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=64))
        >>> gen = AARGenerator(AARConfig(depth=1, embed_dim=64, num_heads=1, latent_dim=8,
        ...                              codebook_size=64), tok).eval()
        >>> gen.generate(torch.randn(2, 512), seed=0).shape
        torch.Size([2, 1, 24000])
        >>> gen.generate(torch.randn(512), seconds=1.5, seed=0).shape  # windows joined by inpainting
        torch.Size([1, 1, 36000])
        >>> gen.set_precision("bf16").dtype, gen.transformer.head.weight.dtype, gen.tokenizer.dtype
        (torch.bfloat16, torch.float32, torch.float32)

    ``to()``, ``bfloat16()`` and the like are ``nn.Module``'s: they cast every tensor, the tokenizer's
    too. The fast paths are :meth:`set_precision` (or ``precision=`` at loading).
    """

    def __init__(self, config: AARConfig, tokenizer: SATTokenizer) -> None:
        super().__init__()
        _check_pair(config, tokenizer)
        self.config = config
        self.transformer = AARTransformer(config)
        self.tokenizer = tokenizer
        self.clap_encoder = None

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        tokenizer: SATTokenizer | str | os.PathLike | None = None,
        filename: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        precision: str | None = None,
        **hub_kwargs: Unpack[HubKwargs],
    ) -> AARGenerator:
        """Load a generator and its tokenizer.

        Args:
            name_or_path: ``"qiuk6/AAR"`` (``AAR_d16_bs2048.pth`` with ``SAT_d128_lat128.pth``), a
                folder written by ``save_pretrained``, a native Hub repo, or an official ``.pth``.
            tokenizer: The paired tokenizer: a ``SATTokenizer`` or anything
                ``SATTokenizer.from_pretrained`` accepts. Needed for an official ``.pth`` unless
                ``SAT_d128_lat128.pth`` lies beside it; a native folder brings its own.
            filename: A file of the folder or repo to load instead of the default.
            device: Where to put both models.
            dtype: Weight dtype of the transformer (float32 by default); bfloat16 and float16 are the
                reduced-precision path (matrix weights only, ``aar.precision.policy.set_weight_dtype``).
                The tokenizer stays float32.
            precision: "fp32" (default: the official arithmetic), "bf16" (as
                ``dtype=torch.bfloat16``), "int8" (CPU only) or "auto" (the fastest that meets the
                accuracy gates on this processor); see ``aar.precision.policy``. The tokenizer stays float32.
            **hub_kwargs: The Hub options of :class:`aar.loading.hub.HubKwargs` (``revision``, ``cache_dir``,
                ``local_files_only``, ``token``), also used for the paired tokenizer.

        Returns:
            The generator, in eval mode.

        Raises:
            FileNotFoundError: nothing at ``name_or_path``.
            WrongModelKindError: a tokenizer ``.pth``, a CLAP checkpoint or another kind of folder.
            MissingTokenizerError: an official ``.pth`` with no tokenizer given or beside it.
            CheckpointError: unreadable file, mismatched tokenizer, or missing/unexpected/mis-shaped
                keys (named).
            HubUnreachableError: a Hub id, the Hub unreachable and the files not cached.
            TypeError: an unknown keyword.
        """
        request = loading_request(device=device, dtype=dtype, **hub_kwargs)
        precision = resolve_precision(precision, request.dtype, request.device)  # before any loading
        dtype = torch.bfloat16 if precision == "bf16" else request.dtype
        source = request.resolve(name_or_path, "aar", filename)
        if source.layout == "native":
            config, state = read_native(source.path, AARConfig)
        else:
            _, official = read_checkpoint(source.path, "aar")
            with naming(source.path):
                state = convert_aar_state_dict(official)
        if not isinstance(tokenizer, SATTokenizer):
            tokenizer = SATTokenizer.from_pretrained(
                tokenizer if tokenizer is not None else hub.paired_tokenizer(source), **request.hub_kwargs
            )
        if source.layout == "official":
            with naming(source.path):
                config = infer_aar_config(state, tokenizer.config)
        with skip_init():  # no random init: every tensor comes from the checkpoint
            model = cls(config, tokenizer)
        adopt_state(model.transformer, state, str(source.path))
        model = model.to(device=request.device).eval()
        return apply_precision(model, "int8") if precision == "int8" else set_weight_dtype(model, dtype)

    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write ``config.json`` + ``model.safetensors``, and the tokenizer into ``tokenizer/``."""
        folder = Path(folder)
        (folder / hub.CONFIG_NAME).unlink(missing_ok=True)  # incomplete until write_native's last step
        self.tokenizer.save_pretrained(folder / hub.TOKENIZER_SUBFOLDER)
        return write_native(folder, self.config.to_dict(), self.transformer.state_dict())

    @property
    def sample_rate(self) -> int:
        """Rate of the generated audio (24 kHz)."""
        return self.tokenizer.sample_rate

    # ------------------------------------------------------------------ conditions
    def clap_vectors(self, clap_emb=None, *, prompt=None, audio=None, sample_rate=None) -> torch.Tensor:
        """The (B, D) condition from exactly one of a CLAP vector, a text prompt or audio.

        Args:
            clap_emb: Tensor or array shaped (D,) or (B, D) (unit-norm CLAP embeddings).
            prompt: A string or a list of strings, embedded by ``clap_encoder.embed_text``.
            audio: Audio (T,), (C, T) with C = 1 or 2, or (B, C, T), embedded by
                ``clap_encoder.embed_audio``.
            sample_rate: Rate of ``audio`` (required with it).

        Returns:
            (B, D) float tensor on the model's device.
        """
        clap_emb = resolve_condition(clap_emb, prompt, audio, sample_rate, self._clap)
        return self._check_clap(clap_emb)

    def _clap(self):
        if self.clap_encoder is None:
            from aar.conditioning.clap import ClapEncoder

            self.clap_encoder = ClapEncoder.from_pretrained(device=self.device)
        return self.clap_encoder

    def _check_clap(self, clap_emb) -> torch.Tensor:
        clap_BD = check_clap_embedding(clap_emb, self.config.cond_dim)
        return clap_BD.to(self.device, self.transformer.activation_dtype)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate_codes(
        self,
        clap_emb=None,
        *,
        prompt: str | list[str] | None = None,
        audio=None,
        sample_rate: int | None = None,
        cfg: float = DEFAULT_CFG,
        top_k: int | None = DEFAULT_TOP_K,
        top_p: float | None = DEFAULT_TOP_P,
        temperature: float = 1.0,
        seed: Seed = None,
        generator: RandomStreams = None,
        progress: bool = False,
        callback: Callable[[ScaleProgress], object] | None = None,
        prefix=None,
        keep_scales: int | None = None,
        forced: editing.ForcedTokens | None = None,
    ) -> AudioCodes:
        """Sample the S scales of one window per condition, optionally keeping some tokens fixed.

        Args:
            clap_emb: CLAP vector(s), (D,) or (B, D). Or give ``prompt`` or ``audio`` instead.
            prompt: Text prompt(s), embedded with the CLAP text tower.
            audio: Reference audio, embedded with the CLAP audio tower.
            sample_rate: Rate of ``audio``.
            cfg: Guidance strength; step si uses ``t = cfg * si / (S - 1)`` and samples from
                ``(1 + t) * cond - t * uncond``. 0 samples from the conditional logits alone;
                negative values push away from the condition (anti-guidance). Default 4.0.
            top_k: Keep the k most likely tokens (ties at the k-th survive); None, 0 or any value
                at or above the codebook size keep all. Default 200.
            top_p: Keep the smallest set of tokens whose probability exceeds ``top_p``; None or 1.0
                keep all. Default 0.95.
            temperature: Divides the guided logits. Default 1.0.
            seed: Seeds a ``torch.Generator`` on the model's device; the same seed gives the tokens
                of the official code with ``g_seed=seed`` on that device. None is random. A list of
                B seeds: one stream per row, as B single calls (docs/generation.md, batches).
            generator: Your own ``torch.Generator`` (on the model's device) instead of ``seed``, or
                a list of B of them, one per row.
            progress: Show a progress bar over the S steps.
            callback: Called after each scale with an ``aar.generation.next_scale.ScaleProgress``
                (scale index, S, the codes so far) for coarse-to-fine previews. It does not change
                the tokens; an exception it raises stops generation and propagates.
            prefix: One window of codes (``AudioCodes`` with W = 1, or S tensors (B, s_i)) whose
                first ``keep_scales`` scales are kept: a variation. Batch 1 or B.
            keep_scales: Scales of ``prefix`` to keep, in [0, S]; 0 is ordinary generation, S returns
                ``prefix``.
            forced: Any ``aar.generation.editing.ForcedTokens`` plan (what ``inpaint`` uses).

        Kept tokens are sampled as usual and then overwritten, so the random stream is that of
        ordinary generation, and guidance only shapes the sampled tokens (see ``aar/generation/editing.py``).

        Every argument is checked before CLAP runs or loads.

        Returns:
            ``AudioCodes`` with W = 1: ``codes[i]`` is (B, 1, s_i).
        """
        options = SamplingOptions(cfg, top_k, top_p, temperature)
        rng = make_generator(seed, generator, device=self.device)
        check_callback(callback)
        plan = editing.check_forced(self.tokenizer, prefix, keep_scales, forced)
        clap_BD = self.clap_vectors(clap_emb, prompt=prompt, audio=audio, sample_rate=sample_rate)
        clap_BD, plan = editing.align_forced(clap_BD, plan)
        levels = sample_scales(self.transformer, self.tokenizer.quantizer, clap_BD, options,
                               generator=rng, progress=progress, callback=callback, forced=plan)
        window = self.tokenizer.config.window
        return AudioCodes(tuple(c.unsqueeze(1) for c in levels), length=window, sample_rate=self.sample_rate)

    @torch.no_grad()
    def generate(self, clap_emb=None, *, prompt: str | list[str] | None = None, audio=None,
                 sample_rate: int | None = None, seconds: float | None = None, overlap: float | None = None,
                 cfg: float = DEFAULT_CFG, top_k: int | None = DEFAULT_TOP_K,
                 top_p: float | None = DEFAULT_TOP_P, temperature: float = 1.0, seed: Seed = None,
                 generator: RandomStreams = None, progress: bool = False,
                 callback: Callable[[ScaleProgress], object] | None = None, prefix=None,
                 keep_scales: int | None = None, forced: editing.ForcedTokens | None = None) -> torch.Tensor:
        """Generate one second of audio per condition, or ``seconds`` of it.

        The condition, sampling and kept-token arguments (one window only) are those of
        :meth:`generate_codes`. One seed draws every row of a batch from one random stream: row b
        of ``generate(stack([v, w]), seed=s)`` is not ``generate(v, seed=s)``; ``seed=[s, t]``
        gives each row its own, and row b is then ``generate(v_b, seed=s_b)`` to the bit, in every
        precision (docs/generation.md); the ``aar`` command batches outputs so (output j: ``seed + j``).

        Args:
            seconds: Output length in seconds, made of windows chained by inpainting their overlap
                (``aar.generation.long_generation``); the same seed gives the same audio. None: one window.
            overlap: Seconds each window shares with the previous one, in [0, 1); default 0.25.
                Each seam is crossfaded over it.

        With ``seconds``, ``progress=True`` shows a bar over the windows, and ``callback`` receives a
        ``ScaleProgress`` after every scale of every window (``window``, ``num_windows`` set).

        Returns:
            Float32 audio (B, 1, T) at 24 kHz: T = 24000, or ``round(seconds * 24000)``.
        """
        knobs = dict(prompt=prompt, audio=audio, sample_rate=sample_rate, cfg=cfg, top_k=top_k, top_p=top_p,
                     temperature=temperature, seed=seed, generator=generator, progress=progress,
                     callback=callback)
        kept = {k: v for k, v in dict(prefix=prefix, keep_scales=keep_scales, forced=forced).items()
                if v is not None}  # long generation refuses them by name
        if seconds is None:
            if overlap is not None:
                raise ValueError(f"overlap= belongs to long generation: pass seconds= too (got "
                                 f"overlap={overlap!r})")
            codes = self.generate_codes(clap_emb, **knobs, **kept)  # decoded a row per pass, as alone:
            return self.tokenizer.decode(codes, batch_size=1)  # the convolutions' sums vary by batch size
        return long_generation.generate_long(self, clap_emb, seconds=seconds, overlap=overlap, **knobs,
                                             **kept).audio

    @torch.no_grad()
    def continue_audio(self, audio, sample_rate: int, *, seconds: float, overlap: float | None = None,
                       clap_emb=None, prompt: str | list[str] | None = None, cfg: float = DEFAULT_CFG,
                       top_k: int | None = DEFAULT_TOP_K, top_p: float | None = DEFAULT_TOP_P,
                       temperature: float = 1.0, seed: int | None = None,
                       generator: torch.Generator | None = None, progress: bool = False,
                       callback: Callable[[ScaleProgress], object] | None = None) -> torch.Tensor:
        """Continue a clip of any length by ``seconds`` (``aar.generation.long_generation.continue_long``).

        The first new window starts ``overlap`` seconds before the clip's end, with the tokens of
        that stretch forced, as each window of a long generation continues the previous one.

        Args:
            audio: The clip, (T,), (C, T) or (B, C, T) at ``sample_rate``; at least ``overlap`` long.
            sample_rate: Its rate in Hz.
            seconds: New audio to add.
            overlap: Seconds of the clip's end the continuation starts from, in [0, 1); default 0.25.
            clap_emb: Condition (D,) or (B, D); with neither it nor ``prompt``, the clip's CLAP
                embedding (through ``clap_encoder``).
            prompt: Text condition instead.
            cfg, top_k, top_p, temperature, seed, generator, progress, callback: As for
                :meth:`generate_codes`.

        Returns:
            Float32 audio (B, 1, P + round(seconds * 24000)) at 24 kHz: the clip (P samples, mono,
            resampled) followed by its continuation.
        """
        return long_generation.continue_long(
            self, audio, sample_rate, seconds=seconds, overlap=overlap, clap_emb=clap_emb, prompt=prompt,
            cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature, seed=seed, generator=generator,
            progress=progress, callback=callback).audio

    @torch.no_grad()
    def vary(self, audio, sample_rate: int, *, keep_scales: int, clap_emb=None,
             prompt: str | list[str] | None = None, cfg: float = DEFAULT_CFG,
             top_k: int | None = DEFAULT_TOP_K, top_p: float | None = DEFAULT_TOP_P,
             temperature: float = 1.0, seed: int | None = None,
             generator: torch.Generator | None = None, progress: bool = False,
             callback: Callable[[ScaleProgress], object] | None = None) -> torch.Tensor:
        """A variation of audio: keep the first ``keep_scales`` scales of each window, resample the rest.

        Args:
            audio: (T,), (C, T) or (B, C, T) at ``sample_rate``; every one-second window is varied.
            sample_rate: Rate of ``audio`` in Hz.
            keep_scales: Scales kept, in [0, S]; more keeps more detail.
            clap_emb: Condition (D,) or (B, D). With neither it nor ``prompt``, the CLAP embedding of
                ``audio`` (through ``clap_encoder``).
            prompt: Text condition instead.
            cfg, top_k, top_p, temperature, seed, generator, progress, callback: As for
                :meth:`generate_codes`, checked before anything is encoded. The windows of every item
                form one batch: ``callback`` codes have B·W rows, row ``b * W + w``.

        Returns:
            Float32 audio (B, 1, T') at 24 kHz, as long as ``audio`` resampled.
        """
        return editing.vary(self, audio, sample_rate, keep_scales=keep_scales, clap_emb=clap_emb,
                            prompt=prompt, cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature,
                            seed=seed, generator=generator, progress=progress, callback=callback)

    @torch.no_grad()
    def inpaint(self, codes_or_audio, known, clap_emb=None, *, sample_rate: int | None = None,
                prompt: str | list[str] | None = None, cfg: float = DEFAULT_CFG,
                top_k: int | None = DEFAULT_TOP_K, top_p: float | None = DEFAULT_TOP_P,
                temperature: float = 1.0, seed: int | None = None, generator: torch.Generator | None = None,
                progress: bool = False, callback: Callable[[ScaleProgress], object] | None = None):
        """Regenerate what ``known`` leaves out: of one window, or of an audio clip of any length.

        A token is forced when its whole span lies inside the known region; the others, including
        those straddling its edge, are sampled (``aar/generation/editing.py`` says why). Audio longer than one
        window is inpainted window by window (``aar.generation.long_generation.inpaint_long``): its known
        samples come back unchanged and only the unknown ones are replaced.

        Args:
            codes_or_audio: One window of codes, or audio of any length at ``sample_rate``.
            known: Bool mask (N,) or (B, N) over the N samples (at 24 kHz: 24000 for one window), or
                seconds: a ``(start, end)`` pair or a list of pairs.
            clap_emb: Condition (D,) or (B, D). Without it or ``prompt``, audio input is embedded with
                CLAP; codes input needs one.
            sample_rate: Rate of audio input.
            prompt: Text condition instead.
            cfg, top_k, top_p, temperature, seed, generator, progress, callback: As for
                :meth:`generate_codes`, checked before anything is encoded.

        Returns:
            ``AudioCodes`` (B, 1, s_i) for codes input; float32 audio (B, 1, T) for audio input.
        """
        return long_generation.inpaint(
            self, codes_or_audio, known, clap_emb, sample_rate=sample_rate, prompt=prompt, cfg=cfg,
            top_k=top_k, top_p=top_p, temperature=temperature, seed=seed, generator=generator,
            progress=progress, callback=callback)


def _check_pair(config: AARConfig, tokenizer: SATTokenizer) -> None:
    tc = tokenizer.config
    if (config.latent_dim, config.codebook_size, tuple(config.scales)) != (
        tc.latent_dim, tc.codebook_size, tuple(tc.scales)
    ):
        raise CheckpointError(
            f"generator (latent_dim={config.latent_dim}, codebook_size={config.codebook_size}, "
            f"scales={config.scales}) does not fit the tokenizer (latent_dim={tc.latent_dim}, "
            f"codebook_size={tc.codebook_size}, scales={tc.scales})"
        )
