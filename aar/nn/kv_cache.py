"""The explicit key/value cache of next-scale generation, one entry per transformer block.

Legend: B batch, H heads, L_seen tokens cached so far, l tokens of the running step, c head dim.

Each block's keys and values live in two buffers sized for a whole window, allocated at the first
step: a step writes its tokens after the cached ones and attends over a view, instead of copying
the whole cache into a new tensor at every scale.
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
        capacity: Tokens each block's buffer holds (a whole window, L).
        num_scales: Scales appended so far; ``step`` expects this scale index next.
    """

    def __init__(self, depth: int, capacity: int) -> None:
        self.depth = depth
        self.capacity = capacity
        self._keys: list[Tensor | None] = [None] * depth  # each (B, H, capacity, c)
        self._values: list[Tensor | None] = [None] * depth
        self._length = 0
        self._constants: tuple[Tensor, list] | None = None
        self.num_scales = 0

    @property
    def num_tokens(self) -> int:
        """Tokens held per block (0 when empty)."""
        return self._length

    @property
    def batch_size(self) -> int | None:
        """Batch size of the cached keys, or None when empty."""
        return None if self._length == 0 else self._keys[0].shape[0]

    def slots(self) -> list[KVSlot]:
        """Where each block writes the keys and values of the next step (after the cached ones)."""
        return [KVSlot(self, i, self._length) for i in range(self.depth)]

    def commit(self, tokens: int) -> None:
        """Keep the ``tokens`` just written by every block's slot and count one more scale.

        ``step`` calls this only once all blocks have run, so a step that fails part-way leaves the
        cache as it was: what it wrote lies beyond ``num_tokens`` and is overwritten next time.
        """
        self._length += tokens
        self.num_scales += 1

    def _write(self, i: int, start: int, k_BHlc: Tensor, v_BHlc: Tensor) -> KV:
        tokens = k_BHlc.shape[2]
        keys, values = self._keys[i], self._values[i]
        if keys is None:  # the first step: buffers for the whole window
            B, H, _, c = k_BHlc.shape
            self._keys[i] = keys = k_BHlc.new_empty(B, H, self.capacity, c)
            self._values[i] = values = v_BHlc.new_empty(B, H, self.capacity, c)
        keys.narrow(2, start, tokens).copy_(k_BHlc)
        values.narrow(2, start, tokens).copy_(v_BHlc)
        return keys.narrow(2, 0, start + tokens), values.narrow(2, 0, start + tokens)  # views

    def constants(self, cond_BC: Tensor, compute: Callable[[Tensor], list]) -> list:
        """``compute(cond_BC)`` (what every block needs beyond its input: AdaLN parameters, attention
        bias and temperature), computed once per condition."""
        if self._constants is None or self._constants[0] is not cond_BC:
            self._constants = (cond_BC, compute(cond_BC))
        return self._constants[1]

    def reset(self) -> None:
        """Drop every cached tensor and start again at scale 0."""
        self._keys = [None] * self.depth
        self._values = [None] * self.depth
        self._length = 0
        self._constants = None
        self.num_scales = 0

    def __enter__(self) -> KVCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.reset()


class KVSlot:
    """One block's place in a ``KVCache`` for the running step."""

    def __init__(self, cache: KVCache, index: int, start: int) -> None:
        self.cache, self.index, self.start = cache, index, start

    def append(self, k_BHlc: Tensor, v_BHlc: Tensor) -> KV:
        """Write this step's keys and values after the cached ones; all of them, (B, H, L_seen, c)."""
        return self.cache._write(self.index, self.start, k_BHlc, v_BHlc)
