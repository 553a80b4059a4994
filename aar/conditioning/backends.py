"""The two CLAP backends behind :class:`aar.conditioning.clap.ClapEncoder`, and the safe checkpoint reader.

Each backend is a thin adapter with the same four members: ``device``, ``max_samples`` (the longest
clip it embeds without cropping), ``embed_clips`` and ``embed_texts``. Neither normalises nor windows:
:class:`~aar.conditioning.clap.ClapEncoder` does that once for both. Their packages are imported
here, lazily, so ``import aar`` never needs them.

Legend: N clips or texts in one call, T samples at 48 kHz, D embedding size (512).
"""

from __future__ import annotations

import codecs
import collections
import logging
import os
import pickle
import types
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from aar.errors import CheckpointError, WrongModelKindError, require_extra
from aar.loading.native import state_tensors
from aar.loading.official import checkpoint_kind, numpy_scalar_globals, safe_numpy_globals

logger = logging.getLogger(__name__)

LAION_REPO = "lukewys/laion_clap"
LAION_FILENAME = "music_speech_audioset_epoch_15_esc_89.98.pt"
TRANSFORMERS_REPO = "laion/larger_clap_general"
#: laion-clap repeat-pads shorter clips to, and randomly crops longer ones to, this many samples.
LAION_MAX_SAMPLES = 480_000
#: laion-clap's tokenizer pads and truncates to 77 tokens; the transformers backend truncates alike.
TEXT_MAX_TOKENS = 77


#: The package each backend imports (checked before anything is downloaded).
BACKEND_PACKAGES = {"laion-clap": "laion_clap", "transformers": "transformers"}


def require_backend(backend: str) -> None:
    """Raise ``MissingExtraError`` (naming the ``clap`` extra) unless ``backend``'s package is installed.

    Only looks the package up: importing laion-clap downloads tokenizers.
    """
    require_extra(BACKEND_PACKAGES[backend], "clap", f"the {backend} CLAP backend", load=False)


# ---------------------------------------------------------------------------------------------
# Safe reading of laion-clap checkpoints


def _torch_rebuild_globals() -> dict[str, Any]:
    """Torch's tensor and storage rebuild functions, and what their arguments reference.

    The one use of private PyTorch names in aar, on an opt-in path: the fallback reader of old
    laion-clap checkpoints that ``torch.load(weights_only=True)`` refuses. A pickle names the
    functions that rebuild its tensors (``torch._utils._rebuild_tensor_v2`` and kin), so an allowlist
    reader must name them too. If PyTorch renames them, ``getattr`` fails here and reading such a
    checkpoint ends in a ``CheckpointError`` that says so; nothing else in aar depends on them.
    """
    names = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter",
             "_rebuild_parameter_with_state")
    found: dict[str, Any] = {f"torch._utils.{n}": getattr(torch._utils, n) for n in names}
    found["torch.Size"] = torch.Size
    found["collections.OrderedDict"] = collections.OrderedDict
    found["_codecs.encode"] = codecs.encode  # protocol 2 carries bytes (numpy scalars) this way
    for name in dir(torch):
        if name.endswith("Storage") and isinstance(getattr(torch, name), type):
            found[f"torch.{name}"] = getattr(torch, name)
    return found


class _AllowlistUnpickler(pickle.Unpickler):
    """A pickle reader that resolves only an explicit list of globals; anything else is refused."""

    allowed: dict[str, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        obj = self.allowed.get(f"{module}.{name}")
        if obj is None:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only tensors, storages, OrderedDict and "
                "numpy scalars/dtypes are allowed in a CLAP checkpoint"
            )
        return obj


def _allowlist_pickle_module() -> types.ModuleType:
    """A stand-in for the ``pickle`` module that ``torch.load`` accepts as ``pickle_module``."""

    class Unpickler(_AllowlistUnpickler):
        allowed = {**_torch_rebuild_globals(), **numpy_scalar_globals()}

    def load(file, **kwargs):  # torch's legacy format reads its header with pickle_module.load
        return Unpickler(file, **kwargs).load()

    module = types.ModuleType("aar_allowlist_pickle")
    module.Unpickler = Unpickler
    module.load = load
    return module


def read_laion_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read the weights of a laion-clap checkpoint without running code from the file.

    First ``torch.load(weights_only=True)`` with numpy's scalar and dtype globals allowed; files that
    torch's weights-only reader cannot parse (pickle protocol 4, for instance) are read again with a
    pickle module that resolves only torch's rebuild functions, ``OrderedDict`` and numpy scalars.

    Returns:
        The tensors under ``"state_dict"`` (or the top-level dict), with any ``module.`` prefix removed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        WrongModelKindError: the file is an official tokenizer or generator checkpoint.
        CheckpointError: the file is unreadable, holds other pickled objects, or is no state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLAP checkpoint not found: {path}")
    allowed = safe_numpy_globals()  # outside the try: an old torch is not the file's fault
    try:
        with allowed, warnings.catch_warnings():
            # A protocol-4 file makes torch warn before failing; the fallback below handles it.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:  # torch raises several types for unsupported or corrupt files
        logger.debug("weights-only reading of %s failed (%s); trying the allowlist reader",
                     path, _reason(first))
        try:
            # Passing a pickle_module turns torch's own weights-only reader off; ours is the stricter
            # one, resolving nothing outside its allowlist.
            payload = torch.load(path, map_location="cpu", pickle_module=_allowlist_pickle_module())
        except Exception as second:
            raise CheckpointError(
                f"cannot read {path} as a CLAP checkpoint: {_reason(first)}; with the allowlist "
                f"reader: {_reason(second)}. Files carrying other pickled Python objects are "
                "refused because loading them could run code"
            ) from None
    found = checkpoint_kind(payload)
    if found in ("sat", "aar"):
        raise WrongModelKindError(path, found, "clap")
    state = payload.get("state_dict", payload) if isinstance(payload, Mapping) else payload
    return state_tensors(state, path, "a dict of tensors, or one under 'state_dict'")


def _reason(err: Exception) -> str:
    """The informative line of a loading error (torch wraps its reader's error in advice)."""
    text = str(err)
    marker = "WeightsUnpickler error:"
    if marker in text:
        text = text.split(marker, 1)[1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0].split('. ')[0][:200] if lines else ''}"


# ---------------------------------------------------------------------------------------------
# Backends


class LaionClapBackend:
    """laion-clap's ``CLAP_Module`` (HTSAT-base audio tower, RoBERTa text tower)."""

    name = "laion-clap"
    max_samples = LAION_MAX_SAMPLES

    def __init__(self, module: Any, device: torch.device):
        self.module = module
        self.device = device

    @classmethod
    def load(cls, checkpoint: Path, device: torch.device) -> LaionClapBackend:
        """Build ``CLAP_Module`` on ``device`` and load ``checkpoint`` strictly into it."""
        try:
            laion_clap = require_extra("laion_clap", "clap", "the laion-clap CLAP backend")
        except OSError as err:
            raise OSError(
                "importing laion_clap failed: on import it downloads the bert-base-uncased, "
                "roberta-base and facebook/bart-base tokenizers, so it needs the network (or "
                f"those tokenizers in the Hugging Face cache) once; or use backend='transformers' ({err})"
            ) from None
        module = laion_clap.CLAP_Module(enable_fusion=False, amodel="HTSAT-base", device=device)
        state = read_laion_state_dict(checkpoint)
        # transformers >= 4.31 stopped storing RoBERTa's position_ids buffer in the state dict.
        stale = "text_branch.embeddings.position_ids"
        if stale in state and stale not in module.model.state_dict():
            logger.debug("dropping %s: the installed RoBERTa has no such buffer", stale)
            del state[stale]
        module.model.load_state_dict(state, strict=True)
        module.model.eval()
        logger.info("loaded laion-clap weights from %s", checkpoint)
        return cls(module, device)

    def embed_clips(self, clips_NT: torch.Tensor) -> torch.Tensor:
        """(N, T) mono 48 kHz clips, T <= max_samples -> (N, D)."""
        # use_tensor=True skips the int16 rounding; at <= 480000 samples nothing is cropped.
        return self.module.get_audio_embedding_from_data(clips_NT.to(self.device), use_tensor=True)

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """N texts -> (N, D)."""
        if len(texts) == 1:
            # laion-clap's tokenizer squeezes the batch axis of a single text away
            # (LAION-AI/CLAP#85), so embed it twice and keep one row.
            return self.module.get_text_embedding(texts * 2, use_tensor=True)[:1]
        return self.module.get_text_embedding(texts, use_tensor=True)


class TransformersClapBackend:
    """transformers' ``ClapModel`` with its ``ClapProcessor`` (the official scripts' path)."""

    name = "transformers"

    def __init__(self, model: Any, processor: Any, device: torch.device):
        extractor = processor.feature_extractor
        if int(extractor.sampling_rate) != 48_000:
            raise ValueError(
                f"the CLAP feature extractor expects {extractor.sampling_rate} Hz; allowed: 48000"
            )
        self.model = model
        self.processor = processor
        self.device = device
        self.max_samples = int(extractor.nb_max_samples)

    @classmethod
    def load(cls, name_or_path: str | os.PathLike, device: torch.device,
             hub_kwargs: dict[str, Any]) -> TransformersClapBackend:
        """``ClapModel`` and ``ClapProcessor`` from a Hub repo id or a local folder."""
        needed_for = "the transformers CLAP backend"
        ClapModel = require_extra("transformers.models.clap.modeling_clap", "clap", needed_for).ClapModel
        ClapProcessor = require_extra("transformers.models.clap.processing_clap", "clap",
                                      needed_for).ClapProcessor
        kwargs = {k: v for k, v in hub_kwargs.items() if v is not None}
        model = ClapModel.from_pretrained(name_or_path, **kwargs)
        model = model.to(device=device, dtype=torch.float32).eval()
        processor = ClapProcessor.from_pretrained(name_or_path, **kwargs)
        logger.info("loaded transformers CLAP from %s", name_or_path)
        return cls(model, processor, device)

    def embed_clips(self, clips_NT: torch.Tensor) -> torch.Tensor:
        """(N, T) mono 48 kHz clips, T <= max_samples -> (N, D)."""
        rows = list(clips_NT.detach().to("cpu", torch.float32).numpy())
        features = self.processor.feature_extractor(rows, sampling_rate=48_000, return_tensors="pt")
        inputs = {"input_features": features["input_features"].to(self.device)}
        if "is_longer" in features:
            # No clip here exceeds max_samples. The "fusion" extractor marks a random clip as longer
            # when none is; state the truth instead, so the result never depends on numpy's RNG.
            inputs["is_longer"] = torch.zeros_like(features["is_longer"]).to(self.device)
        return _projected(self.model.get_audio_features(**inputs))

    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        """N texts -> (N, D)."""
        tokens = self.processor.tokenizer(
            texts, padding=True, truncation=True, max_length=TEXT_MAX_TOKENS, return_tensors="pt"
        )
        tokens = {k: v.to(self.device) for k, v in tokens.items() if k in ("input_ids", "attention_mask")}
        return _projected(self.model.get_text_features(**tokens))


def _projected(out: Any) -> torch.Tensor:
    """The projected embedding, whether transformers returned a tensor (4.x) or an output object."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if isinstance(pooled, torch.Tensor):
        return pooled
    raise TypeError(f"unexpected CLAP output {type(out).__name__}: no tensor or pooler_output")
