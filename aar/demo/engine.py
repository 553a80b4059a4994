"""The work behind the demo's tabs, without Gradio: conditions, streamed generation, editing, tokens.

Legend: B batch, W windows, S scales, s_i tokens of scale i, D CLAP dim, C channels, T samples.

Every request runs on its own: one condition, samples drawn in turn with seeds ``seed + j`` (as
``aar generate --num-samples`` does), so a result can be reproduced alone with the library. Streamed
work runs in a worker thread that hands each finished scale back through a queue; when the consumer
stops listening (the page cancelled the job), the next scale raises inside the worker and generation
stops there.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from aar.audio import resample, to_mono
from aar.codes import AudioCodes
from aar.demo.settings import DemoSettings
from aar.errors import check_int_range
from aar.generation.next_scale import ScaleProgress
from aar.generation.options import DEFAULT_CFG, DEFAULT_TOP_K, DEFAULT_TOP_P, SamplingOptions
from aar.generation.sampling import make_generator
from aar.precision.policy import precision_of

#: Where a condition can come from, as the page names them.
CONDITIONS = ("none (unconditional)", "CLAP vector (.npy)", "text prompt (CLAP)", "reference clip (CLAP)")


@dataclass(frozen=True)
class Knobs:
    """The sampling knobs of one request and its first seed; checked on construction.

    Attributes:
        cfg: Guidance strength. top_k: 0 keeps all. top_p: in (0, 1]. temperature: > 0.
        seed: Seed of the first sample; sample j uses ``seed + j``.
    """

    cfg: float = DEFAULT_CFG
    top_k: int = DEFAULT_TOP_K
    top_p: float = DEFAULT_TOP_P
    temperature: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        SamplingOptions(self.cfg, self.top_k, self.top_p, self.temperature)
        check_int_range("seed", self.seed, 0, 2**63 - 1, shown="in [0, 2**63)")

    def sampling(self) -> dict:
        """``cfg``, ``top_k``, ``top_p``, ``temperature`` as keyword arguments of generation."""
        return dict(cfg=self.cfg, top_k=self.top_k, top_p=self.top_p, temperature=self.temperature)


@dataclass(frozen=True, eq=False)
class Preview:
    """One finished scale of one sample: the audio decoded from the scales so far.

    Attributes:
        sample: Which sample of the request (0-based) and ``num_samples`` in all.
        window: The window being generated, of ``num_windows``.
        index: The scale just finished, 0..S-1, of ``num_scales``.
        audio: Float32 (1, T) at 24 kHz: the window (or every window of a variation) from scales 0..index.
        elapsed: Seconds since the request started.
    """

    sample: int
    num_samples: int
    window: int
    num_windows: int
    index: int
    num_scales: int
    audio: torch.Tensor
    elapsed: float


@dataclass(frozen=True, eq=False)
class Result:
    """The finished samples of a request.

    Attributes:
        audio: One float32 (1, T) tensor at 24 kHz per sample.
        codes: Each sample's ``AudioCodes`` when it is one window of generation, else None.
        seeds: The seed of each sample.
        elapsed: Seconds the request took.
    """

    audio: tuple[torch.Tensor, ...]
    codes: tuple[AudioCodes | None, ...]
    seeds: tuple[int, ...]
    elapsed: float


class Cancelled(Exception):
    """Raised inside the worker at the next scale once nobody listens to the stream."""


class DemoEngine:
    """A loaded generator and what the page may ask of it.

    Args:
        gen: The ``AARGenerator``.
        model: Its name or path, shown on the page and recorded in codes files.
        settings: The limits of requests.
        clap_model: The CLAP checkpoint or Hub id for text and clip conditions, loaded on first use
            (None: the backend's release), unless ``gen.clap_encoder`` is already set.
        clap_backend: ``"laion-clap"`` or ``"transformers"``.
    """

    def __init__(self, gen, model: str, settings: DemoSettings | None = None, *,
                 clap_model: str | None = None, clap_backend: str = "laion-clap") -> None:
        self.gen = gen
        self.model = model
        self.settings = settings or DemoSettings()
        self.clap_model, self.clap_backend = clap_model, clap_backend
        self.precision = precision_of(gen)
        self._lock = threading.Lock()  # one request on the model at a time, whatever the server does

    @property
    def sample_rate(self) -> int:
        return self.gen.sample_rate

    def describe(self) -> str:
        """One line for the page: the model, its precision and device."""
        return f"model {self.model} · precision {self.precision} · device {self.gen.device}"

    # ---------------------------------------------------------------------------------- inputs
    def condition(self, source: str, *, prompt: str | None = None, clip=None, vector=None) -> torch.Tensor:
        """The (1, D) condition of a request.

        Args:
            source: One of ``CONDITIONS``.
            prompt: The text, for a text prompt.
            clip: ``((C, T), rate)`` from ``read_clip``, for a reference clip.
            vector: (1, D) from ``read_vector``, for a CLAP vector.
        """
        if source == CONDITIONS[0]:
            return self.gen.transformer.uncond_clap(1).float()
        if source == CONDITIONS[1]:
            if vector is None:
                raise ValueError("upload a CLAP vector (.npy) or choose another condition")
            return self.gen.clap_vectors(vector)
        if source not in CONDITIONS:
            raise ValueError(f"condition must be one of {list(CONDITIONS)}, got {source!r}")
        if self.gen.clap_encoder is None:  # loaded on first use
            from aar.conditioning.clap import ClapEncoder

            ClapEncoder.check_installed(self.clap_backend)
            with self._lock:  # once, whichever request comes first
                if self.gen.clap_encoder is None:
                    self.gen.clap_encoder = ClapEncoder.from_pretrained(
                        self.clap_model, backend=self.clap_backend, device=self.gen.device)
        if source == CONDITIONS[2]:
            if not prompt or not prompt.strip():
                raise ValueError("type a text prompt or choose another condition")
            return self.gen.clap_vectors(prompt=prompt.strip())
        if clip is None:
            raise ValueError("upload a reference clip or choose another condition")
        return self.gen.clap_vectors(audio=clip[0], sample_rate=clip[1])

    def mono(self, clip) -> torch.Tensor:
        """``((C, T), rate)`` as mono (1, T) at the model's rate."""
        wav_CT, rate = clip
        return resample(to_mono(wav_CT[None]), rate, self.sample_rate)[0].to(self.gen.tokenizer.device)

    def _check_count(self, num_samples) -> int:
        most = self.settings.max_samples
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or not 1 <= num_samples <= most:
            raise ValueError(f"number of samples must be an integer in [1, {most}], got {num_samples!r}")
        return num_samples

    def _check_seconds(self, seconds, name: str = "seconds") -> float:
        most = self.settings.max_seconds
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds <= most:
            raise ValueError(f"{name} must lie in (0, {most:g}], got {seconds!r}")
        return float(seconds)

    # ---------------------------------------------------------------------------------- streams
    def stream(self, run: Callable[[int, Callable], tuple[torch.Tensor, AudioCodes | None]],
               num_samples: int, knobs: Knobs, rows_per_window: int = 1,
               length: int | None = None) -> Iterator[Preview | Result]:
        """Run ``run(seed, callback)`` once per sample in a worker thread; yield its previews, then a Result.

        Args:
            run: Makes one sample from its seed, calling ``callback`` with every ``ScaleProgress``;
                returns the sample's audio (1, T) and its codes (or None).
            num_samples: Samples, seeded ``knobs.seed + j``.
            knobs: The request's knobs.
            rows_per_window: Rows of ``ScaleProgress.codes`` that form one item (W for a variation of
                W windows), decoded side by side as the preview.
            length: Samples of a preview of several windows (the clip's length); None keeps all.
        """
        start = time.perf_counter()
        events: queue.Queue = queue.Queue()
        stop = threading.Event()

        def work() -> None:
            audio, codes, seeds = [], [], []
            try:
                with self._lock, torch.no_grad():
                    for j in range(num_samples):
                        seed = knobs.seed + j

                        def callback(p: ScaleProgress, j=j) -> None:
                            if stop.is_set():
                                raise Cancelled
                            events.put(self._preview(p, j, num_samples, rows_per_window, start, length))

                        wav, sample_codes = run(seed, callback)
                        audio.append(wav.cpu())
                        codes.append(sample_codes)
                        seeds.append(seed)
                events.put(Result(tuple(audio), tuple(codes), tuple(seeds), time.perf_counter() - start))
            except BaseException as err:  # handed to the consumer, who raises it
                events.put(err)

        worker = threading.Thread(target=work, name="aar-demo-request", daemon=True)
        worker.start()
        try:
            while True:
                event = events.get()
                if isinstance(event, BaseException):
                    raise event
                yield event
                if isinstance(event, Result):
                    return
        finally:
            stop.set()
            worker.join()

    def _preview(self, p: ScaleProgress, sample: int, num_samples: int, rows: int, start: float,
                 length: int | None) -> Preview:
        W = rows
        levels = [c.reshape(-1, W, c.shape[-1])[:1] for c in p.codes]  # (1, W, s_j): the first item
        audio = self.gen.tokenizer.decode(levels, num_scales=p.index + 1, length=length)[0].cpu()
        return Preview(sample, num_samples, p.window, p.num_windows, p.index, p.num_scales, audio,
                       time.perf_counter() - start)

    # ---------------------------------------------------------------------------------- the tabs
    def generate(self, clap_1D: torch.Tensor, knobs: Knobs, *, seconds: float = 1.0,
                 num_samples: int = 1) -> Iterator[Preview | Result]:
        """Generation: one window (with codes) for one second, else windows chained by inpainting."""
        seconds = self._check_seconds(seconds)
        num_samples = self._check_count(num_samples)
        one_window = round(seconds * self.sample_rate) == self.gen.tokenizer.config.window

        def run(seed: int, callback):
            if one_window:
                codes = self.gen.generate_codes(clap_1D, seed=seed, callback=callback, **knobs.sampling())
                return self.gen.tokenizer.decode(codes)[0], codes
            wav = self.gen.generate(clap_1D, seconds=seconds, seed=seed, callback=callback,
                                    **knobs.sampling())
            return wav[0], None

        return self.stream(run, num_samples, knobs)

    def vary(self, clip, clap_1D: torch.Tensor, knobs: Knobs, *, keep_scales: int,
             num_samples: int = 1) -> Iterator[Preview | Result]:
        """Variations of a clip: its first ``keep_scales`` scales kept in every window."""
        num_samples = self._check_count(num_samples)
        S = self.gen.config.num_scales
        if isinstance(keep_scales, bool) or not isinstance(keep_scales, int) or not 1 <= keep_scales <= S:
            raise ValueError(f"scales to keep must be an integer in [1, {S}], got {keep_scales!r}")
        wav_1T = self.mono(clip)
        W = -(-wav_1T.shape[-1] // self.gen.tokenizer.config.window)

        def run(seed: int, callback):
            wav = self.gen.vary(wav_1T, self.sample_rate, keep_scales=keep_scales, clap_emb=clap_1D,
                                seed=seed, callback=callback, **knobs.sampling())
            return wav[0], None

        return self.stream(run, num_samples, knobs, rows_per_window=W, length=wav_1T.shape[-1])

    def inpaint(self, clip, clap_1D: torch.Tensor, knobs: Knobs, *, start: float,
                end: float) -> Iterator[Preview | Result]:
        """Regenerate ``[start, end)`` seconds of a clip inside the one-second window centred on it."""
        from aar.demo.inpainting import inpaint_range

        wav_1T = self.mono(clip)

        def run(seed: int, callback):
            return inpaint_range(self.gen, wav_1T, clap_1D, start=start, end=end, seed=seed,
                                 callback=callback, **knobs.sampling()), None

        from aar.demo.inpainting import check_range

        check_range(start, end, wav_1T.shape[-1] / self.sample_rate, self.gen.tokenizer.config.window
                    / self.sample_rate)
        return self.stream(run, 1, knobs)

    def extend(self, clip, clap_1D: torch.Tensor, knobs: Knobs, *, add_seconds: float,
               context: float = 0.5) -> Iterator[Preview | Result]:
        """The clip continued by ``add_seconds`` (see ``aar.demo.continuation``)."""
        from aar.demo.continuation import continue_audio

        add_seconds = self._check_seconds(add_seconds, "seconds to add")
        wav_1T = self.mono(clip)

        def run(seed: int, callback):
            rng = make_generator(seed, None, device=self.gen.device)
            return continue_audio(self.gen, wav_1T, clap_1D, add_seconds=add_seconds, context=context,
                                  rng=rng, callback=callback, **knobs.sampling()), None

        return self.stream(run, 1, knobs)

    def tokenize(self, clip) -> AudioCodes:
        """The clip's codes, (1, W, s_i) per scale."""
        with self._lock, torch.no_grad():
            return self.gen.tokenizer.encode(self.mono(clip), self.sample_rate)

    def ladder(self, codes: AudioCodes, num_scales: int) -> torch.Tensor:
        """Audio (1, T) decoded from the first ``num_scales`` scales of ``codes``."""
        with self._lock, torch.no_grad():
            return self.gen.tokenizer.decode(codes, num_scales=num_scales)[0].cpu()
