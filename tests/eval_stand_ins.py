"""Audio folders and small scoring models for the evaluation tests (real VGGish/PANNs weights are not
available offline; these satisfy the same protocols)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch


class TinyExtractor:
    """Eight log band energies at 16 kHz; counts the clips it embeds."""

    name = "tiny-bands"
    sample_rate = 16_000
    dim = 8

    def __init__(self) -> None:
        self.calls = 0

    def embed(self, wav_B1T: torch.Tensor) -> torch.Tensor:
        self.calls += wav_B1T.shape[0]
        spec = torch.stft(wav_B1T[:, 0], 256, window=torch.hann_window(256), return_complex=True).abs()
        bands = torch.nn.functional.adaptive_avg_pool1d(spec.mean(-1, keepdim=True).transpose(1, 2), 8)
        return (bands[:, 0] + 1e-6).log()  # (B, 8)


class TinyClassifier:
    """Four classes: a softmax of a fixed linear map of the band energies."""

    name = "tiny-classes"
    sample_rate = 16_000
    num_classes = 4

    def __init__(self) -> None:
        self.bands = TinyExtractor()
        self.weight = torch.randn(8, 4, generator=torch.Generator().manual_seed(3))

    def probs(self, wav_B1T: torch.Tensor) -> torch.Tensor:
        return (self.bands.embed(wav_B1T) @ self.weight).softmax(-1)


def _speech_like(rate: int, seconds: float, seed: int) -> np.ndarray:
    """A voiced buzz with a wandering pitch under a syllable-rate envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2
    return (0.15 * voice * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _music_like(rate: int, seconds: float, seed: int) -> np.ndarray:
    """A chord of decaying plucked notes, retriggered every half second."""
    t = np.arange(int(rate * seconds)) / rate
    local = t % 0.5
    notes = [220.0 * 2 ** (k / 12) for k in (0, 4, 7, 12 + seed % 3)]
    return (0.1 * sum(np.sin(2 * np.pi * f * t) for f in notes) * np.exp(-6 * local)).astype(np.float32)


def write_eval_folder(root: Path) -> dict[str, Path]:
    """Real files of several kinds: speech-like, music-like, odd rates, stereo, a tail, a broken file.

    Returns:
        Name -> path; ``broken`` cannot be decoded and ``blip`` is shorter than the shortest tail scored.
    """
    root.mkdir(parents=True, exist_ok=True)
    files = {
        "speech_16k": (_speech_like(16_000, 1.5, 0), 16_000),
        "speech_8k": (_speech_like(8_000, 1.2, 1), 8_000),
        "music_22k": (_music_like(22_050, 1.0, 2), 22_050),
        "music_44k_stereo": (np.stack([_music_like(44_100, 1.3, 3), _music_like(44_100, 1.3, 4)], 1), 44_100),
        "speech_24k": (_speech_like(24_000, 2.05, 5), 24_000),
    }
    paths = {}
    for name, (data, rate) in files.items():
        paths[name] = root / f"{name}.wav"
        sf.write(paths[name], data, rate, subtype="FLOAT")
    paths["blip"] = root / "sub" / "blip.flac"
    paths["blip"].parent.mkdir()
    sf.write(paths["blip"], _music_like(24_000, 0.05, 6), 24_000)
    paths["broken"] = root / "broken.wav"
    paths["broken"].write_bytes(b"RIFF" + bytes(range(120)))
    return paths


class TinyFramesExtractor(TinyExtractor):
    """Like VGGish, also offers per-frame embeddings: the band energies of each half of a clip."""

    name = "tiny-frames"

    def embed_frames(self, wav_B1T: torch.Tensor) -> torch.Tensor:
        half = wav_B1T.shape[-1] // 2
        return torch.stack([self.embed(wav_B1T[..., :half]), self.embed(wav_B1T[..., half:])], dim=1)
