"""``AARGenerator``: CLAP-conditioned next-scale generation of one-second windows of audio.

Legend: B batch, D CLAP dim (512), S scales (16), s_i tokens of scale i, L tokens per window (455),
V codebook size, E codebook vector width (latent_dim), F frames per window (75).

The generator pairs the transformer with its tokenizer and is the public face of both: loading and
saving, argument checks, and the entry points. The work lies in small modules: the S-step sampling
loop with its guidance ramp in ``aar/next_scale.py``, CLAP conditions in ``aar/conditions.py``,
teacher forcing and likelihoods in ``aar/scoring.py``, variations and inpainting in
``aar/editing.py``.
"""

from __future__ import annotations

import logging
import math
import os
from numbers import Real
from pathlib import Path

import torch
from torch import nn

from . import editing, hub, scoring
from ._loading import adopt_state, loading_request, naming, read_native, skip_init, write_native
from .codes import AudioCodes
from .conditions import check_clap_embedding, resolve_condition
from .config import AARConfig
from .convert import convert_aar_state_dict, infer_aar_config, read_checkpoint
from .errors import CheckpointError
from .next_scale import sample_scales
from .nn.precision import cast_matrix_weights, warn_if_slow
from .nn.transformer import AARTransformer
from .sampling import make_generator, validate_sampling
from .tokenizer import SATTokenizer

logger = logging.getLogger(__name__)

#: Sampling defaults: what the official inference script runs.
DEFAULT_CFG, DEFAULT_TOP_K, DEFAULT_TOP_P = 4.0, 200, 0.95


class AARGenerator(nn.Module):
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
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> AARGenerator:
        """Load a generator and its tokenizer.

        Args:
            name_or_path: ``"qiuk6/AAR"`` (``AAR_d16_bs2048.pth`` with ``SAT_d128_lat128.pth``), a
                folder written by ``save_pretrained``, a native Hub repo, or an official ``.pth``.
            tokenizer: The paired tokenizer: a ``SATTokenizer`` or anything
                ``SATTokenizer.from_pretrained`` accepts. Needed for an official ``.pth`` unless
                ``SAT_d128_lat128.pth`` lies beside it; a native folder brings its own.
            filename: A file of the folder or repo to load instead of the default.
            revision: Hub branch, tag or commit (also used for the paired tokenizer).
            cache_dir: Hub cache folder.
            local_files_only: Never use the network (``HF_HUB_OFFLINE=1`` does the same).
            token: Hub token.
            device: Where to put both models.
            dtype: Weight dtype of the transformer (float32 by default); ``torch.bfloat16`` runs the
                reduced-precision path of :meth:`to`. The tokenizer stays float32.

        Returns:
            The generator, in eval mode.

        Raises:
            FileNotFoundError: nothing at ``name_or_path``.
            WrongModelKindError: a tokenizer ``.pth``, a CLAP checkpoint or another kind of folder.
            MissingTokenizerError: an official ``.pth`` with no tokenizer given or beside it.
            CheckpointError: unreadable file, mismatched tokenizer, or missing/unexpected/mis-shaped
                keys (named).
            HubUnreachableError: a Hub id, the Hub unreachable and the files not cached.
        """
        request = loading_request(device=device, dtype=dtype, revision=revision, cache_dir=cache_dir,
                                  local_files_only=local_files_only, token=token)
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
        return model.to(device=request.device, dtype=request.dtype).eval()

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

    @property
    def device(self) -> torch.device:
        return next(self.transformer.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the transformer's matrix weights (float32 unless cast, see :meth:`to`)."""
        return self.transformer.word_embed.weight.dtype

    def to(self, *args, **kwargs) -> AARGenerator:
        """``nn.Module.to``, except that a dtype applies to the transformer only.

        ``gen.to(dtype=torch.bfloat16)`` casts the transformer's matrix weights once, except the
        output head; biases, activations, softmax, normalisation statistics, logits and sampling stay
        float32. The tokenizer (codebooks, phi, decoder) keeps float32 and moves with the device
        only. On a CPU without bfloat16 matrix units a one-time log message says that bfloat16 runs
        slower there (docs/performance.md). Packed weights (:meth:`pack_weights`) are packed again
        for the new weights, or dropped (logged) where packing does not apply, e.g. on a GPU.
        """
        device, dtype, non_blocking, _ = torch._C._nn._parse_to(*args, **kwargs)
        packed = self.transformer.weights_packed
        for child in self.children():
            child.to(device=device, non_blocking=non_blocking)
        if dtype is not None:
            cast_matrix_weights(self.transformer, dtype, keep=("head",))  # under 1 % of the work
        warn_if_slow(dtype, self.device)
        if packed and not self.transformer.weights_packed:  # the packs copied the old weights
            try:
                self.transformer.pack_weights()
            except ValueError as exc:
                self.transformer.pack_weights(False)
                logger.info("weights unpacked: %s", exc)
        return self

    def pack_weights(self, enabled: bool = True) -> AARGenerator:
        """Lay the transformer's per-step weights out once for oneDNN: faster inference on a CPU.

        Opt-in. PyTorch's CPU matrix product re-lays a weight out at every call, which for the
        few-row products of generation costs about as much as the product; packed weights skip that
        (``aar.nn.linear``). The cost is a second copy of those weights (0.8 GB for AAR_d16).
        Results equal the unpacked ones to float32 rounding, not bit for bit: a seed can give a
        different token where two candidates nearly tie, whereas the default reproduces the official
        code's tokens exactly. Speed-ups are measured in docs/performance.md. :meth:`to` re-packs for
        a new CPU dtype; packs of weights changed in any other way are dropped, never used stale
        (except after writes through ``weight.data``, which PyTorch does not track: pack again).

        Args:
            enabled: False drops the packs again.

        Returns:
            ``self``, so that ``AARGenerator.from_pretrained(...).pack_weights()`` chains.

        Raises:
            ValueError: the model is not on the CPU, its weights are float16, or this PyTorch build
                has no oneDNN.
        """
        self.transformer.pack_weights(enabled)
        return self

    @property
    def weights_packed(self) -> bool:
        """Whether :meth:`pack_weights` is in effect."""
        return self.transformer.weights_packed

    # ------------------------------------------------------------------ conditions
    def clap_vectors(self, clap_emb=None, *, prompt=None, audio=None, sample_rate=None) -> torch.Tensor:
        """The (B, D) condition from exactly one of a CLAP vector, a text prompt or audio.

        Args:
            clap_emb: Tensor or array shaped (D,) or (B, D) (unit-norm CLAP embeddings).
            prompt: A string or a list of strings, embedded by ``clap_encoder.embed_text``.
            audio: Audio (T,), (C, T) or (B, C, T), embedded by ``clap_encoder.embed_audio``.
            sample_rate: Rate of ``audio`` (required with it).

        Returns:
            (B, D) float tensor on the model's device.
        """
        clap_emb = resolve_condition(clap_emb, prompt, audio, sample_rate, self._clap)
        return self._check_clap(clap_emb)

    def _clap(self):
        if self.clap_encoder is None:
            from .clap import ClapEncoder

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
        seed: int | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
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
            top_k: Keep the k most likely tokens (ties at the k-th survive); None or 0 keep all.
                Default 200.
            top_p: Keep the smallest set of tokens whose probability exceeds ``top_p``; None or 1.0
                keep all. Default 0.95.
            temperature: Divides the guided logits. Default 1.0.
            seed: Seeds a ``torch.Generator`` on the model's device; the same seed gives the tokens
                of the official code with ``g_seed=seed`` on that device. None is random.
            generator: Your own ``torch.Generator`` (on the model's device) instead of ``seed``.
            progress: Show a progress bar over the S steps.
            prefix: One window of codes (``AudioCodes`` with W = 1, or S tensors (B, s_i)) whose
                first ``keep_scales`` scales are kept: a variation. Batch 1 or B.
            keep_scales: Scales of ``prefix`` to keep, in [0, S]; 0 is ordinary generation, S returns
                ``prefix``.
            forced: Any ``aar.editing.ForcedTokens`` plan (what ``inpaint`` uses).

        Kept tokens are sampled as usual and then overwritten, so the random stream is that of
        ordinary generation, and guidance only shapes the sampled tokens (see ``aar/editing.py``).

        Returns:
            ``AudioCodes`` with W = 1: ``codes[i]`` is (B, 1, s_i).
        """
        clap_BD = self.clap_vectors(clap_emb, prompt=prompt, audio=audio, sample_rate=sample_rate)
        if not isinstance(cfg, Real) or isinstance(cfg, bool) or not math.isfinite(cfg):
            raise ValueError(f"cfg must be a finite number, got {cfg!r}")
        validate_sampling(top_k, top_p, temperature, self.config.codebook_size)
        rng = make_generator(seed, generator, device=self.device)
        clap_BD, plan = editing.resolve_forced(self.tokenizer, clap_BD, prefix, keep_scales, forced)
        levels = sample_scales(self.transformer, self.tokenizer.quantizer, clap_BD, cfg=float(cfg),
                               top_k=top_k, top_p=top_p, temperature=temperature, generator=rng,
                               progress=progress, forced=plan)
        window = self.tokenizer.config.window
        return AudioCodes(tuple(c.unsqueeze(1) for c in levels), length=window, sample_rate=self.sample_rate)

    @torch.no_grad()
    def generate(self, clap_emb=None, *, seconds: float | None = None, overlap: float | None = None,
                 callback=None, **kwargs) -> torch.Tensor:
        """Generate one second of audio per condition, or ``seconds`` of it.

        Takes the arguments of :meth:`generate_codes`, and:

        Args:
            seconds: Output length in seconds, made of windows chained by inpainting their overlap
                (``aar.long_generation``); the same seed gives the same audio. None: one window.
            overlap: Seconds each window shares with the previous one, in [0, 1); default 0.25.
                Each seam is crossfaded over it.
            callback: Called as ``callback(done, total)`` after each window when ``seconds`` is set.

        Returns:
            Float32 audio (B, 1, T) at 24 kHz: T = 24000, or ``round(seconds * 24000)``.
        """
        if seconds is None:
            if overlap is not None or callback is not None:
                raise ValueError("overlap= and callback= belong to long generation: pass seconds= too")
            return self.tokenizer.decode(self.generate_codes(clap_emb, **kwargs))
        from .long_generation import generate_long

        return generate_long(self, clap_emb, seconds=seconds, overlap=overlap, callback=callback,
                             **kwargs).audio

    @torch.no_grad()
    def vary(self, audio, sample_rate: int, *, keep_scales: int, clap_emb=None, prompt=None,
             **kwargs) -> torch.Tensor:
        """A variation of audio: keep the first ``keep_scales`` scales of each window, resample the rest.

        Args:
            audio: (T,), (C, T) or (B, C, T) at ``sample_rate``; every one-second window is varied.
            sample_rate: Rate of ``audio`` in Hz.
            keep_scales: Scales kept, in [0, S]; more keeps more detail.
            clap_emb: Condition (D,) or (B, D). With neither it nor ``prompt``, the CLAP embedding of
                ``audio`` (through ``clap_encoder``).
            prompt: Text condition instead.
            **kwargs: Sampling arguments of :meth:`generate_codes` (``seed``, ``cfg``, ...).

        Returns:
            Float32 audio (B, 1, T') at 24 kHz, as long as ``audio`` resampled.
        """
        return editing.vary(self, audio, sample_rate, keep_scales=keep_scales, clap_emb=clap_emb,
                            prompt=prompt, **kwargs)

    @torch.no_grad()
    def inpaint(self, codes_or_audio, known, clap_emb=None, *, sample_rate: int | None = None,
                prompt=None, **kwargs):
        """Regenerate the unknown part of one window, keeping the tokens that lie inside ``known``.

        A token is forced when its whole span lies inside the known region; the others, including
        those straddling its edge, are sampled (``aar/editing.py`` says why).

        Args:
            codes_or_audio: One window of codes, or audio of at most one window at ``sample_rate``.
            known: Bool mask (N,) or (B, N) over the window's N = 24000 samples, or seconds: a
                ``(start, end)`` pair or a list of pairs.
            clap_emb: Condition (D,) or (B, D). Without it or ``prompt``, audio input is embedded with
                CLAP; codes input needs one.
            sample_rate: Rate of audio input.
            prompt: Text condition instead.
            **kwargs: Sampling arguments of :meth:`generate_codes`.

        Returns:
            ``AudioCodes`` (B, 1, s_i) for codes input; float32 audio (B, 1, T) for audio input.
        """
        return editing.inpaint(self, codes_or_audio, known, clap_emb, sample_rate=sample_rate,
                               prompt=prompt, **kwargs)

    # ------------------------------------------------------------------ scoring
    def next_scale_inputs(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Teacher-forcing input from one window's codes: S tensors (B, s_i) -> (B, L - s_0, E)."""
        return scoring.next_scale_inputs(self.tokenizer.quantizer, levels)

    @torch.no_grad()
    def logits(self, codes, clap_emb=None) -> torch.Tensor:
        """Teacher-forced logits of every token of one window.

        Args:
            codes: ``AudioCodes`` with W = 1, or S tensors shaped (B, s_i) or (B, 1, s_i).
            clap_emb: Condition (D,) or (B, D); None uses the stored unconditional embedding.

        Returns:
            Float32 logits (B, L, V); position j is predicted from the scales before its own.
        """
        levels = scoring.window_levels(self.tokenizer, codes, self.device)
        B = levels[0].shape[0]
        model = self.transformer
        if clap_emb is None:
            clap_BD = model.uncond_clap(B)
        else:
            clap_BD = self._check_clap(clap_emb)
            if clap_BD.shape[0] != B:
                raise ValueError(f"clap_emb has batch {clap_BD.shape[0]}, codes have batch {B}")
        return model(model.condition(clap_BD), self.next_scale_inputs(levels)).float()

    @torch.no_grad()
    def log_likelihood(self, codes, clap_emb=None) -> torch.Tensor:
        """Log-probability of a window's codes, in nats, summed over its L tokens.

        Teacher-forced and without guidance: ``sum_j log softmax(logits)[j, code_j]``.

        Args:
            codes: As for :meth:`logits`.
            clap_emb: Condition (D,) or (B, D); None scores under the unconditional branch.

        Returns:
            (B,) float32 tensor.
        """
        levels = scoring.window_levels(self.tokenizer, codes, self.device)
        return scoring.sum_log_probs(self.logits(levels, clap_emb), levels)


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
