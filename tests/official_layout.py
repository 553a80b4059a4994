"""Write aar models back into the official checkpoint layout, to test conversion on any shape.

This is the inverse of ``aar.loading.official``: folded weights are split into weight-norm pairs (either key
style), names get their official nesting and the training-only buffers are added.
"""

from __future__ import annotations

import torch

from aar.nn.conv import PaddedConv1d, TrimmedConvTranspose1d
from aar.nn.quantizer import Phi


def _weight_norm_pair(weight: torch.Tensor, style: str) -> dict[str, torch.Tensor]:
    g = torch.norm_except_dim(weight, 2, 0)
    if style == "g_v":
        return {"weight_g": g, "weight_v": weight.clone()}
    return {"parametrizations.weight.original0": g, "parametrizations.weight.original1": weight.clone()}


def sat_official_state(tokenizer, *, style: str = "g_v", prefix: str = "module.") -> dict:
    """The tokenizer's weights as the official training script saves them."""
    out: dict[str, torch.Tensor] = {}
    for name, module in tokenizer.named_modules():
        if isinstance(module, Phi):
            base = name.replace("quantizer.phi.", "quantizer.vq.quant_resi.qresi_ls.")
            out[f"{base}.weight"], out[f"{base}.bias"] = module.weight, module.bias
        elif isinstance(module, (PaddedConv1d, TrimmedConvTranspose1d)):
            leaf = "convtr.convtr" if isinstance(module, TrimmedConvTranspose1d) else "conv.conv"
            for key, value in _weight_norm_pair(module.weight.detach(), style).items():
                out[f"{name}.{leaf}.{key}"] = value
            out[f"{name}.{leaf}.bias"] = module.bias
        elif isinstance(module, torch.nn.LSTM):
            for key, value in module.state_dict().items():
                out[f"{name}.{key}"] = value
        elif isinstance(module, torch.nn.Linear) and name.startswith("quantizer.project_"):
            base = name.replace("quantizer.", "quantizer.vq.")
            out[f"{base}.weight"], out[f"{base}.bias"] = module.weight, module.bias
    for i, book in enumerate(tokenizer.quantizer.codebooks):
        base = f"quantizer.vq.layers.{i}._codebook"
        out[f"{base}.embed"] = book.weight
        out[f"{base}.inited"] = torch.ones(1)
        out[f"{base}.cluster_size"] = torch.ones(book.weight.shape[0])
        out[f"{base}.embed_avg"] = book.weight.clone()
    return {prefix + k: v.detach().clone() for k, v in out.items()}


def save_sat_official(tokenizer, path, **kwargs) -> None:
    """``torch.save`` the tokenizer in the official layout (beside training-state entries)."""
    state = sat_official_state(tokenizer, **kwargs)
    torch.save({"generator_state_dict": state, "epoch": 3, "step": 100}, path)


def populate_hub_cache(cache_dir, repo_id: str, files: dict, revision: str = "main",
                       commit: str = "0123456789abcdef0123456789abcdef01234567"):
    """Lay files out as huggingface_hub's cache does, so downloads resolve offline.

    Args:
        cache_dir: The ``cache_dir`` to pass to ``from_pretrained``.
        repo_id: ``owner/name``.
        files: Repository path -> bytes or local file to copy.
        revision: The ref that points at ``commit``.
        commit: A 40-hex-digit commit id.
    """
    from pathlib import Path

    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    for rel, content in files.items():
        target = snapshot / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content if isinstance(content, bytes) else Path(content).read_bytes()
        target.write_bytes(data)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / revision).write_text(commit)
    return snapshot


def aar_official_state(generator, *, prefix: str = "") -> dict:
    """The transformer's weights as the official training script saves them, buffers included."""
    state = {k: v.detach().clone() for k, v in generator.transformer.state_dict().items()}
    config = generator.config
    L = config.tokens_per_window
    level = torch.repeat_interleave(torch.arange(config.num_scales), torch.tensor(config.scales))
    state["lvl_1L"] = level.view(1, L)
    allowed = level.view(L, 1) >= level.view(1, L)
    state["attn_bias_for_masking"] = torch.where(allowed, 0.0, -torch.inf).view(1, 1, L, L)
    for i in range(config.depth):
        state[f"blocks.{i}.attn.zero_k_bias"] = torch.zeros(config.embed_dim)
    return {prefix + k: v for k, v in state.items()}


def save_aar_official(generator, path, **kwargs) -> None:
    torch.save({"model_state_dict": aar_official_state(generator, **kwargs), "epoch": 1}, path)
