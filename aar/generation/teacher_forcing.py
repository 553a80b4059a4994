"""Teacher forcing: the transformer's input for known codes, and the log-likelihood of codes.

Legend: B batch, S scales, s_i tokens of scale i, L tokens per window (sum of s_i), V codebook size,
E latent width, F frames per window.

Scale i is predicted from the latent of scales ``0..i-1``: their summed residuals ``f`` (B, E, F),
area-resampled to ``s_i`` positions. Concatenated over scales 1..S-1 these are the (B, L - s_0, E)
inputs of ``AARTransformer.forward``; scale 0 reads the start token instead. ``TeacherForcing``
gives ``AARGenerator`` its ``logits`` and ``log_likelihood`` methods.

Each row is scored as if alone: the phi convolutions run row by row and the transformer takes each
row as its own request (``groups``), so a row's logits do not depend on its batch-mates.
"""

from __future__ import annotations

import torch

from aar.generation.next_scale import scale_residual
from aar.nn.quantizer import ScaleQuantizer


def next_scale_inputs(quantizer: ScaleQuantizer, levels: list[torch.Tensor]) -> torch.Tensor:
    """Teacher-forcing input from one window's codes: S tensors (B, s_i) -> (B, L - s_0, E)."""
    f_BEF, inputs = None, []
    for si in range(len(levels) - 1):
        h_BEF = scale_residual(quantizer, si, levels[si])
        f_BEF = h_BEF if f_BEF is None else f_BEF + h_BEF
        inputs.append(quantizer.next_scale_input(f_BEF, si + 1))
    return torch.cat(inputs, dim=1)


def window_levels(tokenizer, codes, device: torch.device) -> list[torch.Tensor]:
    """One window's codes as S tensors (B, s_i) on ``device``, checked against ``tokenizer``.

    Args:
        tokenizer: The ``SATTokenizer`` whose scales and codebook size the codes must fit.
        codes: ``AudioCodes`` with W = 1, or S tensors (B, s_i) or (B, 1, s_i).
        device: Where the result goes.

    Raises:
        ValueError: codes that do not fit, or more than one window.
    """
    levels = tokenizer.check_codes(codes)
    if levels[0].shape[1] != 1:
        raise ValueError(
            f"the generator scores one window at a time: codes have W={levels[0].shape[1]}; "
            "pass codes[i][:, w] for window w"
        )
    return [c[:, 0].to(device) for c in levels]


def sum_log_probs(logits_BLV: torch.Tensor, levels: list[torch.Tensor]) -> torch.Tensor:
    """``sum_j log softmax(logits_BLV)[j, code_j]`` over the L tokens of ``levels``, (B,)."""
    idx_BL = torch.cat(levels, dim=1).to(logits_BLV.device)
    log_probs = logits_BLV.log_softmax(dim=-1).gather(-1, idx_BL.unsqueeze(-1))
    return log_probs.squeeze(-1).sum(dim=1)


class TeacherForcing:
    """Scoring methods of ``AARGenerator``: a mixin over its ``transformer``, ``tokenizer``,
    ``device`` and ``_check_clap`` (the validated condition on the model's device)."""

    def next_scale_inputs(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """Teacher-forcing input from one window's codes: S tensors (B, s_i) -> (B, L - s_0, E)."""
        return next_scale_inputs(self.tokenizer.quantizer, levels)

    @torch.no_grad()
    def logits(self, codes, clap_emb=None) -> torch.Tensor:
        """Teacher-forced logits of every token of one window.

        Args:
            codes: ``AudioCodes`` with W = 1, or S tensors shaped (B, s_i) or (B, 1, s_i).
            clap_emb: Condition (D,) or (B, D); None uses the stored unconditional embedding.

        Returns:
            Float32 logits (B, L, V); position j is predicted from the scales before its own.
        """
        levels = window_levels(self.tokenizer, codes, self.device)
        B = levels[0].shape[0]
        model = self.transformer
        if clap_emb is None:
            clap_BD = model.uncond_clap(B)
        else:
            clap_BD = self._check_clap(clap_emb)
            if clap_BD.shape[0] != B:
                raise ValueError(f"clap_emb has batch {clap_BD.shape[0]}, codes have batch {B}")
        return model(model.condition(clap_BD, groups=B), self.next_scale_inputs(levels), groups=B).float()

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
        levels = window_levels(self.tokenizer, codes, self.device)
        return sum_log_probs(self.logits(levels, clap_emb), levels)
