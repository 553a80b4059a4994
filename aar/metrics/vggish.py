"""VGGish, the embedding network of the original Fréchet Audio Distance (Kilgour et al., 2019).

A reimplementation of the published network (Hershey et al., 2017; the TensorFlow ``vggish_slim``
model and its ``mel_features`` frontend), so FAD needs neither TensorFlow nor a pickled model:

* frontend: mono audio at 16 kHz; 25-ms frames (400 samples) every 10 ms (160), no padding; a periodic
  Hann window; the magnitude of a 512-point real FFT; 64 triangular mel bands spaced evenly on the HTK
  mel scale ``1127 ln(1 + f / 700)`` between 125 and 7500 Hz (DC bin weight zero); ``log(mel + 0.01)``;
  non-overlapping examples of 96 frames (0.96 s), a trailing partial example left out;
* network: four VGG stages (64, 128, 256-256, 512-512 channels of 3x3 convolutions with ReLU, each
  stage ending in a 2x2 max pool), the (6, 4, 512) map flattened in TensorFlow's (time, mel, channel)
  order, and fully connected layers 12288 -> 4096 -> 4096 -> 128 (ReLU after the first two).

The 128-D output is the raw embedding, as FAD uses it: no PCA whitening, no 8-bit quantisation, no
ReLU after the last layer. Audio at another rate is resampled with torchaudio's sinc resampler (the
TensorFlow code used resampy, so values differ slightly for non-16-kHz input).

Weights: the PyTorch port of the released VGGish checkpoint, ``vggish-10086976.pth`` from the
``harritaylor/torchvggish`` GitHub release, loads directly (its key names are aar's); a safetensors
file works the same way.

Legend: B batch, T samples, n examples (0.96 s) per clip, F frames (96), M mel bands (64), D 128.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from aar.metrics._pretrained import PretrainedNetwork
from aar.metrics.extractor import mono_batch

SAMPLE_RATE = 16_000
WINDOW = 400
HOP = 160
FFT_SIZE = 512
NUM_BANDS = 64
MEL_MIN_HZ = 125.0
MEL_MAX_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 96
#: The shortest clip that makes one example (0.975 s); shorter clips are zero-padded to this length.
MIN_SAMPLES = WINDOW + (EXAMPLE_FRAMES - 1) * HOP
#: Public name of the PyTorch port of the released weights.
CHECKPOINT_NAME = "vggish-10086976.pth"

#: Published key -> aar key. The port uses aar's names; its PCA postprocessor (not used by FAD) is
#: dropped if present.
KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^features\.(0|3|6|8|11|13)\.(weight|bias)$", r"features.\1.\2"),
    (r"^embeddings\.(0|2|4)\.(weight|bias)$", r"embeddings.\1.\2"),
)
DROPPED = re.compile(r"^pproc\.(pca_eigen_vectors|pca_means|_pca_matrix|_pca_means)$")


def _hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(hz / 700.0)


def mel_matrix() -> torch.Tensor:
    """VGGish's mel weights, (FFT_SIZE // 2 + 1, 64) = (257, 64), float64.

    Triangles with edges evenly spaced on the HTK mel scale between 125 and 7500 Hz, evaluated at the
    FFT bin centres; the DC bin gets weight 0.
    """
    bins_mel = _hz_to_mel(torch.linspace(0.0, SAMPLE_RATE / 2, FFT_SIZE // 2 + 1, dtype=torch.float64))
    low, high = (1127.0 * math.log1p(hz / 700.0) for hz in (MEL_MIN_HZ, MEL_MAX_HZ))
    edges = torch.linspace(low, high, NUM_BANDS + 2, dtype=torch.float64)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bins_mel[:, None] - lower) / (center - lower)
    falling = (upper - bins_mel[:, None]) / (upper - center)
    weights = torch.minimum(rising, falling).clamp(min=0.0)
    weights[0] = 0.0
    return weights


def log_mel_examples(wav_BT: torch.Tensor) -> torch.Tensor:
    """The VGGish frontend: (B, T) audio at 16 kHz -> (B, n, 96, 64) log-mel examples.

    Clips shorter than ``MIN_SAMPLES`` are zero-padded to that length (one example).
    """
    if wav_BT.shape[-1] < MIN_SAMPLES:
        wav_BT = F.pad(wav_BT, (0, MIN_SAMPLES - wav_BT.shape[-1]))
    frames = wav_BT.unfold(-1, WINDOW, HOP)  # (B, frames, WINDOW)
    window = torch.hann_window(WINDOW, periodic=True, dtype=wav_BT.dtype, device=wav_BT.device)
    magnitude = torch.fft.rfft(frames * window, n=FFT_SIZE).abs()  # (B, frames, 257)
    mel = magnitude @ mel_matrix().to(magnitude)  # (B, frames, M)
    log_mel = torch.log(mel + LOG_OFFSET)
    n = (log_mel.shape[1] - EXAMPLE_FRAMES) // EXAMPLE_FRAMES + 1
    return rearrange(log_mel[:, : n * EXAMPLE_FRAMES], "b (n f) m -> b n f m", f=EXAMPLE_FRAMES)


class VGGish(PretrainedNetwork):
    """VGGish embeddings at 16 kHz: an :class:`EmbeddingExtractor` with ``dim`` 128.

    Example:
        >>> vggish = VGGish.from_pretrained("checkpoints")  # doctest: +SKIP
        >>> per_example = vggish.embed_frames(torch.randn(2, 1, 32_000))  # doctest: +SKIP
        >>> per_example.shape == (2, frames_for(32_000), 128)  # doctest: +SKIP
        True

    Here ``checkpoints/`` holds ``vggish-10086976.pth``; :meth:`embed` gives one vector per clip.
    """

    name = "vggish"
    sample_rate = SAMPLE_RATE
    dim = 128
    checkpoint_name, key_rules, dropped = CHECKPOINT_NAME, KEY_RULES, DROPPED
    weights_source = ("vggish-10086976.pth from the harritaylor/torchvggish GitHub release v0.1 "
                      "(github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth)")
    #: Examples per forward pass in ``embed_frames`` (bounds memory for long or many clips).
    batch_size = 64

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for stage in ((64,), (128,), (256, 256), (512, 512)):
            for width in stage:
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
                channels = width
            layers.append(nn.MaxPool2d(2, 2))
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(
            nn.Linear(512 * 6 * 4, 4096), nn.ReLU(),
            nn.Linear(4096, 4096), nn.ReLU(),
            nn.Linear(4096, self.dim),
        )

    def forward(self, examples: torch.Tensor) -> torch.Tensor:
        """Embed log-mel examples: (N, 1, 96, 64) -> (N, 128)."""
        x = self.features(examples)  # (N, 512, 6, 4)
        x = rearrange(x, "n c t m -> n (t m c)")  # TensorFlow's flattening order
        return self.embeddings(x)

    @torch.no_grad()
    def embed_frames(self, wav) -> torch.Tensor:
        """One embedding per 0.96-s example, as FAD pools them: (B, 1, T) at 16 kHz -> (B, n, 128).

        ``n = floor((T - 400) / 160 + 1) // 96`` (at least 1: shorter clips are zero-padded).
        """
        weight = self.embeddings[0].weight
        wav_B1T = mono_batch(wav)
        # the frontend in float64 on the CPU, as torchvggish's numpy code computes it (not every device
        # has float64); the network on the weights' device, in their dtype
        examples = log_mel_examples(wav_B1T[:, 0].to("cpu", torch.float64))  # (B, n, F, M)
        B, n = examples.shape[:2]
        flat = rearrange(examples, "b n f m -> (b n) 1 f m").to(weight.device, weight.dtype)
        out = torch.cat([self(chunk) for chunk in flat.split(self.batch_size)])
        return out.reshape(B, n, self.dim).float()

    def embed(self, wav) -> torch.Tensor:
        """One embedding per clip, the mean of its examples' embeddings: (B, 1, T) -> (B, 128)."""
        return self.embed_frames(wav).mean(dim=1)


def frames_for(samples: int) -> int:
    """Examples ``embed_frames`` returns for a clip of ``samples`` samples at 16 kHz."""
    frames = (max(samples, MIN_SAMPLES) - WINDOW) // HOP + 1
    return max(1, math.floor(frames / EXAMPLE_FRAMES))
