"""The fixed inputs the reference tools were run on to make ``tests/fixtures/reference/`` (see its README).

Everything comes from ``numpy.random.RandomState`` (whose stream numpy keeps stable) and closed-form
signals, so the reference runs and the tests see the same numbers without storing the audio.
"""

from __future__ import annotations

import numpy as np

#: Rates the spectral fixtures were made at.
SPECTRAL_RATES = (24_000, 16_000)


def spectral_pairs(sample_rate: int, items: int = 3, seconds: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(items, 1, T) float32 references and estimates: harmonic tones with noise, and a distorted copy."""
    rng = np.random.RandomState(sample_rate // 1000 + items)
    T = int(sample_rate * seconds)
    t = np.arange(T) / sample_rate
    refs, ests = [], []
    for i in range(items):
        f0 = 110.0 * (i + 1) + 20 * rng.rand()
        tone = sum(np.sin(2 * np.pi * k * f0 * t + rng.rand()) / k for k in range(1, 8))
        ref = 0.2 * tone * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.randn(T)
        est = 0.9 * np.roll(ref, i + 1) + 0.03 * rng.randn(T) + 0.05 * np.tanh(4 * ref)
        refs.append(ref)
        ests.append(est)
    return np.stack(refs)[:, None].astype(np.float32), np.stack(ests)[:, None].astype(np.float32)


def class_logits(n: int, classes: int = 527, seed: int = 0) -> np.ndarray:
    """(n, classes) float32 logits with a few confident classes per row, like a tagger's."""
    rng = np.random.RandomState(seed)
    logits = rng.randn(n, classes) * 2.0 - 4.0
    for row in range(n):
        logits[row, rng.randint(0, classes, 3)] += 6.0 * rng.rand(3)
    return logits.astype(np.float32)


def write_clips(folder, names, sample_rate: int, seconds: float, seed: int) -> list:
    """16-bit WAV files of harmonic tones in noise (the same for every reader of 16-bit PCM)."""
    from pathlib import Path

    import soundfile as sf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    paths = []
    for name in names:
        f0 = 80.0 + 900.0 * rng.rand()
        tone = sum(np.sin(2 * np.pi * k * f0 * t + rng.rand()) / k for k in range(1, 6))
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (0.5 + 4 * rng.rand()) * t)
        wav = 0.15 * tone * envelope + (0.01 + 0.05 * rng.rand()) * rng.randn(t.size) + 0.02 * rng.randn()
        sf.write(folder / name, np.clip(wav, -1, 1).astype(np.float32), sample_rate, subtype="PCM_16")
        paths.append(folder / name)
    return paths


def _random_state(model, seed: int) -> dict:
    """Seeded weights for a model built on the meta device: Kaiming-normal matrices and kernels (so
    activations keep their scale through the layers), small random biases, neutral batch norms."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in sorted(model.state_dict().items()):
        norm = name.split(".")[-2].startswith("bn") if "." in name else False
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(0)
        elif norm or name.endswith(("running_mean", "running_var")):
            fill = 1.0 if name.endswith(("weight", "running_var")) else 0.0
            state[name] = torch.full(tensor.shape, fill)
        elif name.endswith("weight") and tensor.ndim > 1:
            state[name] = torch.randn(tensor.shape, generator=generator) * (2.0 / tensor[0].numel()) ** 0.5
        elif name.endswith("bias"):
            state[name] = 0.1 * torch.randn(tensor.shape, generator=generator)
    return state


def random_panns_state(sample_rate: int = 16_000, seed: int = 0) -> dict:
    """A CNN14 state dict with random weights under the published key names (without the STFT
    matrices, which every implementation rebuilds): what the reference fixtures were run with."""
    import torch

    from aar.metrics import PANNsCNN14, PANNsCNN14At16k
    from aar.metrics.panns import mel_filters

    network = PANNsCNN14At16k if sample_rate == 16_000 else PANNsCNN14
    with torch.device("meta"):
        model = network()
    state = _random_state(model, seed)
    state["bn0.running_mean"] = torch.full((64,), -40.0)  # roughly normalises a log-mel input in dB
    state["bn0.running_var"] = torch.full((64,), 400.0)
    state["logmel_extractor.melW"] = mel_filters(sample_rate, network.fft_size, network.mel_max_hz)
    return state


def random_vggish_state(seed: int = 1) -> dict:
    """A VGGish state dict with random weights under torchvggish's key names."""
    import torch

    from aar.metrics import VGGish

    with torch.device("meta"):
        model = VGGish()
    return _random_state(model, seed)


def compare_folders(root) -> tuple[list, list]:
    """The folders ``aar eval compare`` was pinned on: three clips each, the same names, other rates."""
    from pathlib import Path

    names = [f"clip_{i}.wav" for i in range(3)]
    return (write_clips(Path(root) / "a", names, 22_050, 1.5, seed=10),
            write_clips(Path(root) / "b", names, 24_000, 1.2, seed=11))


def reconstruct_inputs(root):
    """The folder and tokenizer ``aar eval reconstruct`` was pinned on: two 24-kHz clips (one window;
    a window and a 0.5-s tail) and a seeded tiny tokenizer saved at ``root / "tiny"``."""
    from pathlib import Path

    import torch

    from aar import SATConfig, SATTokenizer

    root = Path(root)
    files = write_clips(root / "clips", ["one.wav"], 24_000, 1.0, seed=20)
    files += write_clips(root / "clips", ["tail.wav"], 24_000, 1.5, seed=21)
    torch.manual_seed(0)
    SATTokenizer(SATConfig(n_filters=4, dimension=8, latent_dim=8, codebook_size=256)).eval().save_pretrained(
        root / "tiny")
    return files, root / "tiny"


def resampler_probe(sample_rate: int) -> np.ndarray:
    """1.3 s of a tone in noise, float32: what the resampler fixture was made from."""
    rng = np.random.RandomState(sample_rate // 100)
    t = np.arange(int(sample_rate * 1.3)) / sample_rate
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.randn(t.size)).astype(np.float32)


def fadtk_folders(root) -> tuple[list, list]:
    """The folders ``aar eval compare --protocol fadtk`` was pinned on: four 16-bit WAV files at
    24 kHz in ``a`` and four at 44.1 kHz in ``b``, with the same names. Each folder has a clip shorter
    than 1 s (fadtk pads it to 1 s); ``a/clip_2.wav`` is stereo (channels averaged) and
    ``a/clip_3.wav`` is hard-clipped at full scale, so its resampled samples overshoot and the 16-bit
    write clips them."""
    from pathlib import Path

    import soundfile as sf

    root = Path(root)
    names = [f"clip_{i}.wav" for i in range(4)]
    a = write_clips(root / "a", names[:1], 24_000, 2.5, seed=30)
    a += write_clips(root / "a", names[1:2], 24_000, 0.6, seed=31)
    rng = np.random.RandomState(32)
    t = np.arange(int(24_000 * 3.3)) / 24_000
    left = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.randn(t.size)
    right = 0.2 * np.sin(2 * np.pi * 330 * t + 1.0) + 0.05 * rng.randn(t.size)
    sf.write(root / "a" / names[2], np.stack([left, right], 1).astype(np.float32), 24_000, subtype="PCM_16")
    loud = np.clip(3.0 * np.sin(2 * np.pi * 150 * t[:48_000]) + 0.3 * rng.randn(48_000), -1, 1)
    sf.write(root / "a" / names[3], loud.astype(np.float32), 24_000, subtype="PCM_16")
    a += [root / "a" / names[2], root / "a" / names[3]]
    b = [write_clips(root / "b", [name], 44_100, seconds, seed=40 + i)[0]
         for i, (name, seconds) in enumerate(zip(names, (2.2, 0.8, 3.0, 1.5)))]
    return a, b
