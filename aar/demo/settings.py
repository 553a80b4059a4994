"""What the demo page allows: where it listens, how large an upload or a request may be."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

from aar.errors import check_int_range

#: The loopback address: the page is reachable from this machine only, unless told otherwise.
LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class DemoSettings:
    """Limits and addresses of ``aar demo``, checked on construction.

    Attributes:
        host: Address the server binds to; ``127.0.0.1`` keeps it on this machine.
        port: TCP port.
        max_upload_mb: Largest upload in megabytes (10^6 bytes); Gradio refuses bigger files.
        max_clip_seconds: Longest clip the Variations, Inpaint and Tokenizer tabs accept.
        max_seconds: Longest generation or continuation a request may ask for.
        max_samples: Most samples one request may ask for (each is generated in turn).

    Example:
        >>> DemoSettings(max_clip_seconds=5).max_upload_mb
        20.0
        >>> DemoSettings(port=0)
        Traceback (most recent call last):
        ...
        ValueError: port must be an integer in [1, 65535], got 0
    """

    host: str = LOCAL_HOST
    port: int = 7860
    max_upload_mb: float = 20.0
    max_clip_seconds: float = 30.0
    max_seconds: float = 10.0
    max_samples: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError(f"host must be an address such as {LOCAL_HOST}, got {self.host!r}")
        check_int_range("port", self.port, 1, 65535)
        check_int_range("max_samples", self.max_samples, 1)
        for name in ("max_upload_mb", "max_clip_seconds", "max_seconds"):
            value = getattr(self, name)
            number = isinstance(value, Real) and not isinstance(value, bool)
            if not number or not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 1_000_000)
