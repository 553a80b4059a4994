"""The explicit key/value cache of next-scale generation, one entry per transformer block.

Legend: B batch, H heads, L_seen tokens cached so far, c head dim, C embed dim.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

KV = tuple[Tensor, Tensor]  # keys and values of one block, each (B, H, L_seen, c)


class KVCache:
    """Keys and values of the scales already run, one entry per block.

    The cache is a plain object handed to ``AARTransformer.step``; the model keeps no state of its
    own. Use it as a context manager so it is emptied even when generation stops on an exception:

    Example:
        >>> import torch
        >>> from aar import AARConfig
        >>> from aar.nn.transformer import AARTransformer
        >>> model = AARTransformer(AARConfig(depth=1, embed_dim=64, num_heads=1, scales=(1, 2)))
        >>> cond_BC = model.condition(torch.randn(2, 512))
        >>> with model.kv_cache() as cache:
        ...     logits_BlV = model.step(cache, cond_BC, 0)
        ...     print(cache.num_scales, cache.num_tokens)
        1 1
        >>> cache.num_scales
        0

    Attributes:
        depth: Number of blocks whose keys and values are kept.
        num_scales: Scales appended so far; ``step`` expects this scale index next.
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self._layers: list[KV] | None = None
        self._adaln: tuple[Tensor, list[Tensor]] | None = None
        self.num_scales = 0

    @property
    def num_tokens(self) -> int:
        """Tokens held per block (0 when empty)."""
        return 0 if self._layers is None else self._layers[0][0].shape[2]

    @property
    def batch_size(self) -> int | None:
        """Batch size of the cached keys, or None when empty."""
        return None if self._layers is None else self._layers[0][0].shape[0]

    def layers(self) -> list[KV | None]:
        """The cached ``(keys, values)`` of every block, or ``None`` for each when empty."""
        return [None] * self.depth if self._layers is None else list(self._layers)

    def commit(self, layers: list[KV]) -> None:
        """Replace every block's keys and values with ``layers`` and count one more scale.

        ``step`` calls this only once all blocks have run, so a step that fails part-way leaves the
        cache as it was.
        """
        assert len(layers) == self.depth, (len(layers), self.depth)
        self._layers = list(layers)
        self.num_scales += 1

    def adaln(self, cond_BC: Tensor, compute: Callable[[Tensor], list[Tensor]]) -> list[Tensor]:
        """``compute(cond_BC)`` (the AdaLN parameters of every block), computed once per condition."""
        if self._adaln is None or self._adaln[0] is not cond_BC:
            self._adaln = (cond_BC, compute(cond_BC))
        return self._adaln[1]

    def reset(self) -> None:
        """Drop every cached tensor and start again at scale 0."""
        self._layers = None
        self._adaln = None
        self.num_scales = 0

    def __enter__(self) -> KVCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.reset()
