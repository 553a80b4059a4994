"""Conversion of the official checkpoints (``qiuk6/AAR``) to aar's native layout.

The official files are ``torch.save`` pickles: SAT weights under ``generator_state_dict``, AAR weights
under ``model_state_dict``, keys possibly prefixed with ``module.``, weight norm stored as
``weight_g``/``weight_v`` or ``parametrizations.weight.original0/1``. They are read with
``weights_only=True`` only, so a file carrying a pickled object is refused instead of run.

Conversion is data: every official key must match exactly one rule of a table, which names the native
key, or be a known training-only or rebuildable buffer. Anything else is an error naming the key.
Hyperparameters the file does not store are inferred from tensor shapes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aar.config import DEFAULT_SCALES, AARConfig, SATConfig
from aar.errors import KIND_NAMES, CheckpointError, TorchVersionError, WrongModelKindError

# (official pattern, native replacement), applied after the `module.` prefix is stripped and weight
# norm is folded (`X.weight_g` + `X.weight_v` -> `X.weight`).
SAT_KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^(encoder|decoder)\.model\.(\d+)\.conv\.conv\.(weight|bias)$", r"\1.model.\2.\3"),
    (r"^decoder\.model\.(\d+)\.convtr\.convtr\.(weight|bias)$", r"decoder.model.\1.\2"),
    (
        r"^(encoder|decoder)\.model\.(\d+)\.block\.(\d+)\.conv\.conv\.(weight|bias)$",
        r"\1.model.\2.block.\3.\4",
    ),
    (
        r"^(encoder|decoder)\.model\.(\d+)\.shortcut\.conv\.conv\.(weight|bias)$",
        r"\1.model.\2.shortcut.\3",
    ),
    (
        r"^(encoder|decoder)\.model\.(\d+)\.lstm\.((?:weight|bias)_(?:ih|hh)_l\d+)$",
        r"\1.model.\2.lstm.\3",
    ),
    (r"^quantizer\.vq\.project_(in|out)\.(weight|bias)$", r"quantizer.project_\1.\2"),
    (r"^quantizer\.vq\.quant_resi\.qresi_ls\.(\d+)\.(weight|bias)$", r"quantizer.phi.\1.\2"),
    (r"^quantizer\.vq\.layers\.(\d+)\._codebook\.embed$", r"quantizer.codebooks.\1.weight"),
)
#: Buffers that only training uses (k-means state, EMA statistics).
SAT_IGNORED = re.compile(r"^quantizer\.vq\.layers\.\d+\._codebook\.(inited|cluster_size|embed_avg)$")

AAR_KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^(pos_start|pos_1LC|uncond_embedding)$", r"\1"),
    (r"^(word_embed|head)\.(weight|bias)$", r"\1.\2"),
    (r"^class_emb\.(fc1|fc2)\.weight$", r"class_emb.\1.weight"),
    (r"^lvl_embed\.weight$", r"lvl_embed.weight"),
    (r"^blocks\.(\d+)\.attn\.(scale_mul_1H11|q_bias|v_bias)$", r"blocks.\1.attn.\2"),
    (r"^blocks\.(\d+)\.attn\.mat_qkv\.weight$", r"blocks.\1.attn.mat_qkv.weight"),
    (r"^blocks\.(\d+)\.(attn\.proj|ffn\.fc1|ffn\.fc2)\.(weight|bias)$", r"blocks.\1.\2.\3"),
    (r"^blocks\.(\d+)\.ada_lin\.1\.(weight|bias)$", r"blocks.\1.ada_lin.1.\2"),
    (r"^head_nm\.ada_lin\.1\.(weight|bias)$", r"head_nm.ada_lin.1.\1"),
)
#: Buffers that the model rebuilds from its config (level ids, the causal mask, the zero key bias).
AAR_IGNORED = re.compile(r"^(lvl_1L|attn_bias_for_masking|blocks\.\d+\.attn\.zero_k_bias)$")

_SECTIONS = {"sat": "generator_state_dict", "aar": "model_state_dict"}


def numpy_scalar_globals() -> dict[str, Any]:
    """Numpy's scalar and (numeric) dtype reconstruction, under the names pickles use for them.

    Training scripts store metrics as numpy scalars beside the weights; allowing these (and nothing
    else) lets ``torch.load(weights_only=True)`` read such files.
    """
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    found: dict[str, Any] = {
        "numpy.core.multiarray.scalar": scalar,
        "numpy._core.multiarray.scalar": scalar,
        "numpy.dtype": np.dtype,
    }
    for code in "?bhilqBHILQefdgFDG":  # bool, signed/unsigned ints, floats, complex
        cls = type(np.dtype(code))
        if cls is not np.dtype:  # numpy >= 1.25 has one class per dtype
            found[f"numpy.dtypes.{cls.__name__}"] = cls
    return found


#: The oldest torch whose ``torch.serialization.safe_globals`` takes ``(object, "module.name")`` pairs,
#: which the numpy scalars above need (2.5 has the context manager, but only bare objects).
TORCH_FLOOR = (2, 6)


def safe_numpy_globals():
    """``torch.serialization.safe_globals`` allowing :func:`numpy_scalar_globals`, for ``torch.load``.

    Raises:
        TorchVersionError: torch is older than :data:`TORCH_FLOOR`; the message says so, not that
            the file is bad.
    """
    release = tuple(int(part) for part in re.findall(r"\d+", torch.__version__)[:2])
    serialization = torch.serialization
    if release < TORCH_FLOOR or not hasattr(serialization, "safe_globals"):
        raise TorchVersionError(torch.__version__, ".".join(map(str, TORCH_FLOOR)),
                                "reading .pth checkpoints safely (weights_only=True with numpy scalars)")
    return serialization.safe_globals([(obj, name) for name, obj in numpy_scalar_globals().items()])


def load_weights_only(path: Path) -> Any:
    """A ``torch.save`` payload read with ``weights_only=True``: tensors, containers, numpy scalars.

    Raises:
        CheckpointError: the file is corrupt or carries other pickled objects (loading them could
            run code), with torch's reason.
    """
    allowed = safe_numpy_globals()  # outside the try: an old torch is not the file's fault
    try:
        with allowed:
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt or unsafe files
        reason = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise CheckpointError(
            f"cannot read {path} as a weights-only PyTorch checkpoint ({type(err).__name__}: "
            f"{reason[:200]}); files carrying pickled Python objects are refused because loading "
            "them could run code"
        ) from None


def checkpoint_kind(payload: object) -> str | None:
    """Which model a loaded checkpoint belongs to, from its layout alone.

    Returns:
        ``"sat"`` (official tokenizer: ``generator_state_dict``), ``"aar"`` (official generator:
        ``model_state_dict``), ``"clap"`` (laion-clap: ``audio_branch.*``/``text_branch.*`` keys,
        possibly under ``state_dict``), or None.
    """
    if not isinstance(payload, Mapping):
        return None
    for kind, section in _SECTIONS.items():
        if isinstance(payload.get(section), Mapping):
            return kind
    state = payload.get("state_dict", payload)
    if isinstance(state, Mapping) and any(
        str(k).removeprefix("module.").startswith(("audio_branch.", "text_branch.")) for k in state
    ):
        return "clap"
    return None


def folder_kind(config: Mapping[str, Any]) -> str | None:
    """Which model a native folder's parsed ``config.json`` describes (``model_type``), or None.

    ``"clap"`` is what transformers writes for a ``ClapModel``.
    """
    kind = config.get("model_type")
    return kind if kind in KIND_NAMES else None


def read_checkpoint(
    path: str | os.PathLike, kind: str | None = None
) -> tuple[str, dict[str, torch.Tensor]]:
    """Read the state dict of an official ``.pth`` safely (``weights_only=True``).

    Args:
        path: The ``.pth`` file.
        kind: ``"sat"`` (``generator_state_dict``), ``"aar"`` (``model_state_dict``), or None to
            accept either.

    Returns:
        The kind found, and the tensors with any ``module.`` prefix removed.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        WrongModelKindError: the file is another kind of checkpoint (named), or none aar knows.
        CheckpointError: the file is corrupt or carries pickled objects.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    payload = load_weights_only(path)
    found = checkpoint_kind(payload)
    wanted = (kind,) if kind else tuple(_SECTIONS)
    if found not in wanted:
        keys = sorted(map(str, payload))[:8] if isinstance(payload, Mapping) else type(payload).__name__
        detail = "" if found else f" (it holds {keys})"
        raise WrongModelKindError(path, found, wanted, detail)
    state = payload[_SECTIONS[found]]
    tensors = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {key!r} is {type(value).__name__}, not a tensor")
        tensors[key.removeprefix("module.")] = value
    return found, tensors


def fold_weight_norm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace each weight-norm pair (either key style) by the weight it stands for.

    ``weight = g * v / ||v||``, the norm taken over every axis but 0, computed by the same kernel that
    ``torch.nn.utils.weight_norm`` runs in the forward pass.
    """
    styles = (
        ("weight_g", "weight_v"),
        ("parametrizations.weight.original0", "parametrizations.weight.original1"),
    )
    out: dict[str, torch.Tensor] = {}
    pending: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        for g_name, v_name in styles:
            for part, name in (("g", g_name), ("v", v_name)):
                if key.endswith("." + name):
                    pending.setdefault(key[: -len(name)] + "weight", {})[part] = (key, value)
                    break
            else:
                continue
            break
        else:
            out[key] = value
    for key, pair in pending.items():
        if set(pair) != {"g", "v"}:
            raise CheckpointError(f"weight-norm pair for {key!r} is incomplete: only {sorted(pair)}")
        (g_key, g), (v_key, v) = pair["g"], pair["v"]
        wanted = (v.shape[0],) + (1,) * (v.dim() - 1) if v.dim() else None
        if wanted is None or tuple(g.shape) not in (wanted, wanted[:1]):
            raise CheckpointError(
                f"{g_key!r} has shape {tuple(g.shape)} but {v_key!r} has shape {tuple(v.shape)}: a "
                f"weight-norm gain must be {wanted} (one per output channel)"
            )
        out[key] = _weight_norm(v, g.reshape(wanted))
    return out


def _weight_norm(v: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``g * v / ||v||`` over all dims but the first, through PyTorch's public weight-norm module.

    Going through ``parametrizations.weight_norm`` runs the same kernel as the official model does
    at every forward pass, so the folded weights equal its weights bit for bit (a formula of our own
    differs from it in the last bit, in the order the sum of squares is added up).
    """
    holder = nn.Module()
    holder.weight = nn.Parameter(v.clone(), requires_grad=False)
    nn.utils.parametrizations.weight_norm(holder, dim=0)
    with torch.no_grad():
        holder.parametrizations.weight.original0.copy_(g)
        holder.parametrizations.weight.original1.copy_(v)
        return holder.weight.detach().clone()


def rename(
    state: Mapping[str, torch.Tensor],
    rules: tuple[tuple[str, str], ...],
    ignored: re.Pattern,
    source: str = "official checkpoint",
) -> dict[str, torch.Tensor]:
    """Map published keys to aar's through ``rules`` (pattern, replacement), the first match winning.

    Keys matching ``ignored`` (tensors aar does not load or computes itself) are dropped; a key that
    matches no rule is an error naming it and ``source``.

    Raises:
        CheckpointError: keys that no rule maps.
    """
    compiled = [(re.compile(p), r) for p, r in rules]
    out, unknown = {}, []
    for key, value in state.items():
        if ignored.match(key):
            continue
        for pattern, replacement in compiled:
            if pattern.match(key):
                out[pattern.sub(replacement, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"unexpected key(s) in {source}: {unknown[:10]}")
    return out


def convert_sat_state_dict(official: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official SAT tensors (prefix already stripped) -> native ``SATTokenizer`` state dict."""
    return rename(fold_weight_norm(official), SAT_KEY_RULES, SAT_IGNORED)


def convert_aar_state_dict(official: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official AAR tensors (prefix already stripped) -> native transformer state dict."""
    return rename(official, AAR_KEY_RULES, AAR_IGNORED)


def _indexed(state: Mapping[str, torch.Tensor], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.match(k))})


def infer_sat_config(state: Mapping[str, torch.Tensor]) -> SATConfig:
    """Infer a ``SATConfig`` from a native SAT state dict's shapes.

    Widths, latent size, LSTM and residual depth, ratios (downsampling kernels are ``2 * ratio``), the
    number of scales, codebook size and phi settings come from the tensors; the scale list, sample rate
    and window are those every release shares.
    """
    def need(key: str) -> torch.Tensor:
        if key not in state:
            raise CheckpointError(f"cannot infer the SAT configuration: missing key {key!r}")
        return state[key]

    layers = _indexed(state, r"^encoder\.model\.(\d+)\.")
    if len(layers) < 3:
        raise CheckpointError(f"cannot infer the SAT configuration: encoder layers {layers}")
    kinds = []
    for n in layers:
        if f"encoder.model.{n}.weight" in state:
            kinds.append(("conv", n))
        elif f"encoder.model.{n}.shortcut.weight" in state:
            kinds.append(("res", n))
        elif f"encoder.model.{n}.lstm.weight_ih_l0" in state:
            kinds.append(("lstm", n))
    convs = [n for kind, n in kinds if kind == "conv"]
    down = convs[1:-1]
    ratios = tuple(need(f"encoder.model.{n}.weight").shape[-1] // 2 for n in reversed(down))
    residuals = sum(kind == "res" for kind, _ in kinds)
    if not down or residuals % len(down):
        raise CheckpointError(f"cannot infer the SEANet stages from encoder layers {kinds}")
    lstm = [n for kind, n in kinds if kind == "lstm"]
    lstm_layers = len(_indexed(state, rf"^encoder\.model\.{lstm[0]}\.lstm\.weight_ih_l(\d+)$")) if lstm else 0
    first_res = next(n for kind, n in kinds if kind == "res")
    num_scales = len(_indexed(state, r"^quantizer\.codebooks\.(\d+)\.weight$"))
    num_phi = len(_indexed(state, r"^quantizer\.phi\.(\d+)\.weight$"))
    codebook = need("quantizer.codebooks.0.weight")
    if num_scales != len(DEFAULT_SCALES):
        raise CheckpointError(
            f"checkpoint has {num_scales} codebooks; only the released {len(DEFAULT_SCALES)}-scale "
            "layout can be inferred from an official file (use a native folder for others)"
        )
    return SATConfig(
        n_filters=need(f"encoder.model.{convs[0]}.weight").shape[0],
        dimension=need(f"encoder.model.{convs[-1]}.weight").shape[0],
        latent_dim=codebook.shape[1],
        ratios=ratios,
        n_residual_layers=residuals // len(down),
        lstm_layers=lstm_layers,
        kernel_size=need(f"encoder.model.{convs[0]}.weight").shape[-1],
        last_kernel_size=need(f"encoder.model.{convs[-1]}.weight").shape[-1],
        residual_kernel_size=need(f"encoder.model.{first_res}.block.1.weight").shape[-1],
        codebook_size=codebook.shape[0],
        num_phi=num_phi,
        phi_kernel=need("quantizer.phi.0.weight").shape[-1],
    )


def infer_aar_config(state: Mapping[str, torch.Tensor], tokenizer: SATConfig) -> AARConfig:
    """Infer an ``AARConfig`` from a native AAR state dict's shapes; the scales are the tokenizer's."""
    ranks = {"word_embed.weight": 2, "class_emb.fc1.weight": 2, "head.weight": 2,
             "blocks.0.attn.scale_mul_1H11": 4, "blocks.0.ffn.fc1.weight": 2}
    for key, rank in ranks.items():
        if key not in state:
            raise CheckpointError(f"cannot infer the AAR configuration: missing key {key!r}")
        if state[key].ndim != rank:
            raise CheckpointError(
                f"cannot infer the AAR configuration: {key!r} has shape {tuple(state[key].shape)}, "
                f"expected {rank} dimensions"
            )
    embed_dim, latent_dim = state["word_embed.weight"].shape
    try:
        return AARConfig(
            depth=len(_indexed(state, r"^blocks\.(\d+)\.")),
            embed_dim=embed_dim,
            num_heads=state["blocks.0.attn.scale_mul_1H11"].shape[1],
            cond_dim=state["class_emb.fc1.weight"].shape[1],
            mlp_ratio=state["blocks.0.ffn.fc1.weight"].shape[0] / embed_dim,
            latent_dim=latent_dim,
            codebook_size=state["head.weight"].shape[0],
            scales=tokenizer.scales,
        )
    except ValueError as err:  # e.g. a width that the inferred head count does not divide
        raise CheckpointError(f"cannot infer the AAR configuration: {err}") from None
