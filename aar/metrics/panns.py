"""PANNs CNN14 (Kong et al., 2020): the AudioSet tagger AudioLDM's evaluation uses for ISc, KL and FD.

A reimplementation of the published network, read from its released weights:

* frontend: mono audio at 32 kHz; a centred 1024-point STFT (periodic Hann window of 1024 samples,
  hop 320, reflected edges); the power spectrum through 64 Slaney mel filters between 50 and 14000 Hz
  (librosa's ``filters.mel``, stored in the checkpoint as ``logmel_extractor.melW``);
  ``10 log10(max(mel, 1e-10))``; batch norm over the 64 mel bands (``bn0``);
* network: six blocks of two 3x3 convolutions (no bias) with batch norm and ReLU, 64 ... 2048
  channels, each block but the last followed by 2x2 average pooling; the mean over mel bands, then
  max plus mean over time; ``fc1`` (2048 -> 2048, ReLU) gives the 2048-D embedding, ``fc_audioset``
  (2048 -> 527) the AudioSet class logits, and a sigmoid the clip-wise probabilities.

Clips shorter than ``MIN_SAMPLES`` (0.31 s, the least that survives the five poolings) are
zero-padded to it. The STFT matrices stored in the checkpoint (``spectrogram_extractor.stft.conv_*``)
are the DFT times the window, which ``torch.stft`` computes, so they are not loaded.

Weights: ``Cnn14_mAP=0.431.pth`` from the PANNs Zenodo release (record 3987831); a safetensors file with
aar's key names works the same way.

Legend: B batch, T samples, N frames, M mel bands (64), C channels, K classes (527), D 2048.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn

from aar.metrics._pretrained import PretrainedNetwork
from aar.metrics.extractor import mono_batch

SAMPLE_RATE = 32_000
FFT_SIZE = 1024
HOP = 320
NUM_BANDS = 64
MEL_MIN_HZ = 50.0
MEL_MAX_HZ = 14_000.0
POWER_FLOOR = 1e-10
NUM_CLASSES = 527
#: The shortest clip whose frames survive five 2x poolings (32 frames); shorter clips are zero-padded.
MIN_SAMPLES = 31 * HOP
CHECKPOINT_NAME = "Cnn14_mAP=0.431.pth"
_CHANNELS = (64, 128, 256, 512, 1024, 2048)

#: Published key -> aar key: the mel filters get a plain name, everything else keeps its name.
KEY_RULES: tuple[tuple[str, str], ...] = (
    (r"^logmel_extractor\.melW$", "mel_filters"),
    (r"^bn0\.(weight|bias|running_mean|running_var|num_batches_tracked)$", r"bn0.\1"),
    (r"^conv_block([1-6])\.(conv1|conv2)\.weight$", r"conv_block\1.\2.weight"),
    (
        r"^conv_block([1-6])\.(bn1|bn2)\.(weight|bias|running_mean|running_var|num_batches_tracked)$",
        r"conv_block\1.\2.\3",
    ),
    (r"^(fc1|fc_audioset)\.(weight|bias)$", r"\1.\2"),
)
REBUILT = re.compile(r"^spectrogram_extractor\.stft\.conv_(real|imag)\.weight$")


@dataclass(frozen=True)
class PANNsOutput:
    """What CNN14 says about a batch of clips.

    Attributes:
        probs: (B, 527) sigmoid class probabilities (clip-wise output; multi-label, rows need not sum to 1).
        logits: (B, 527) the class logits before the sigmoid (``logits.softmax(-1)`` gives the
            single-label reading some evaluations use).
        embedding: (B, 2048) the ``fc1`` activations.
    """

    probs: torch.Tensor
    logits: torch.Tensor
    embedding: torch.Tensor


class _ConvBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and ReLU, then average pooling."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, pool) if pool > 1 else x


def mel_filters(sample_rate: int = SAMPLE_RATE, fft_size: int = FFT_SIZE, mel_max_hz: float = MEL_MAX_HZ
                ) -> torch.Tensor:
    """CNN14's mel filters as librosa builds them (Slaney scale and norm): (fft_size // 2 + 1, 64), CPU."""
    return AF.melscale_fbanks(fft_size // 2 + 1, MEL_MIN_HZ, mel_max_hz, NUM_BANDS, sample_rate,
                              norm="slaney", mel_scale="slaney").to("cpu")


_MEL_FILTERS = {32_000: mel_filters(), 16_000: mel_filters(16_000, 512, 8000.0)}  # outside any meta context


class PANNsCNN14(PretrainedNetwork):
    """CNN14 at 32 kHz: an :class:`AudioClassifier` (527 AudioSet classes) and an
    :class:`EmbeddingExtractor` (``dim`` 2048).

    Example:
        >>> cnn14 = PANNsCNN14.from_pretrained("checkpoints/Cnn14_mAP=0.431.pth")  # doctest: +SKIP
        >>> cnn14.probs(torch.randn(2, 1, 32_000)).shape  # doctest: +SKIP
        torch.Size([2, 527])
    """

    name = "panns-cnn14"
    sample_rate = SAMPLE_RATE
    #: STFT size and hop, and the top of the mel bands, of this variant's frontend.
    fft_size, hop, mel_max_hz = FFT_SIZE, HOP, MEL_MAX_HZ
    num_classes = NUM_CLASSES
    dim = 2048
    checkpoint_name, key_rules, dropped = CHECKPOINT_NAME, KEY_RULES, REBUILT
    weights_source = ("Cnn14_16k_mAP=0.438.pth (16 kHz, audioldm_eval's default) or Cnn14_mAP=0.431.pth "
                      "(32 kHz) from Zenodo record 3987831 (zenodo.org/record/3987831)")

    @classmethod
    def variant(cls, state: dict) -> type[PANNsCNN14]:
        """:class:`PANNsCNN14At16k` for a checkpoint with 257-row mel filters, else ``cls``."""
        return variant_for(state) if cls is PANNsCNN14 else cls

    def __init__(self) -> None:
        super().__init__()
        # (F, M); the checkpoint's filters replace these
        self.register_buffer("mel_filters", _MEL_FILTERS[self.sample_rate].clone())
        self.bn0 = nn.BatchNorm2d(NUM_BANDS)
        for i, (cin, cout) in enumerate(zip((1,) + _CHANNELS[:-1], _CHANNELS), start=1):
            self.add_module(f"conv_block{i}", _ConvBlock(cin, cout))
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_audioset = nn.Linear(2048, NUM_CLASSES)

    def log_mel(self, wav_BT: torch.Tensor) -> torch.Tensor:
        """The frontend: (B, T) audio at ``sample_rate`` -> (B, 1, N, 64) log-mel power in dB."""
        shortest = 31 * self.hop  # the least whose frames survive the five poolings
        if wav_BT.shape[-1] < shortest:
            wav_BT = F.pad(wav_BT, (0, shortest - wav_BT.shape[-1]))
        window = torch.hann_window(self.fft_size, periodic=True, dtype=wav_BT.dtype, device=wav_BT.device)
        spec = torch.stft(wav_BT, self.fft_size, hop_length=self.hop, window=window, center=True,
                          pad_mode="reflect", return_complex=True)  # (B, F, N)
        mel = torch.einsum("bfn,fm->bnm", spec.abs().square(), self.mel_filters.to(spec.real.dtype))
        return (10 * torch.log10(mel.clamp(min=POWER_FLOOR)))[:, None]

    def forward(self, wav) -> PANNsOutput:
        """Classify and embed clips: (B, 1, T) at 32 kHz (or (T,)) -> :class:`PANNsOutput`."""
        wav_B1T = mono_batch(wav).to(self.fc1.weight.device)
        x = self.log_mel(wav_B1T[:, 0]).to(self.fc1.weight.dtype)  # (B, 1, N, M), computed in float32
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # normalise each mel band
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, pool=2 if i < 6 else 1)  # (B, C, N', M')
        x = x.mean(dim=3)  # (B, C, N')
        x = x.amax(dim=2) + x.mean(dim=2)  # (B, C)
        embedding = F.relu(self.fc1(x))
        logits = self.fc_audioset(embedding)
        return PANNsOutput(torch.sigmoid(logits).float(), logits.float(), embedding.float())

    @torch.no_grad()
    def probs(self, wav) -> torch.Tensor:
        """Sigmoid AudioSet class probabilities (multi-label, not summing to 1): (B, 1, T) -> (B, 527)."""
        return self(wav).probs

    @torch.no_grad()
    def logits(self, wav) -> torch.Tensor:
        """The class logits, (B, 1, T) -> (B, 527): audioldm_eval's ISc and KL read their softmax (and
        its sigmoid KL their sigmoid); ``aar.evaluation`` uses them when a classifier has this method."""
        return self(wav).logits

    @torch.no_grad()
    def embed(self, wav) -> torch.Tensor:
        """The 2048-D ``fc1`` embedding: (B, 1, T) -> (B, 2048)."""
        return self(wav).embedding


class PANNsCNN14At16k(PANNsCNN14):
    """CNN14 at 16 kHz (``Cnn14_16k_mAP=0.438.pth``), audioldm_eval's default classifier.

    The same network as :class:`PANNsCNN14` on a 16-kHz frontend: 512-point STFT, hop 160, 64 mel
    bands between 50 and 8000 Hz. ``PANNsCNN14.from_pretrained`` returns this class when the
    checkpoint's mel filters have 257 rows.
    """

    name = "panns-cnn14-16k"
    sample_rate = 16_000
    fft_size, hop, mel_max_hz = 512, 160, 8000.0
    checkpoint_name = "Cnn14_16k_mAP=0.438.pth"


def variant_for(state: dict) -> type[PANNsCNN14]:
    """The CNN14 variant whose frontend fits a state dict's mel filters (513 rows: 32 kHz; 257: 16 kHz)."""
    filters = state.get("mel_filters")
    rows = None if filters is None else filters.shape[0]
    return PANNsCNN14At16k if rows == PANNsCNN14At16k.fft_size // 2 + 1 else PANNsCNN14
