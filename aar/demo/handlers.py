"""What each button of the page does: page values in, ``DemoEngine`` work, page values out.

Every handler validates what the page sent, runs the engine and writes its files into a fresh folder
under the app's temporary folder. A refused input becomes a message on the page (``gr.Error``), and
the server goes on with the next request. Handlers of streamed work are generators: each finished
scale yields a preview; the last yield carries the final audio and the downloads.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from aar.audio import write_audio
from aar.demo.engine import CONDITIONS, DemoEngine, Knobs, Preview, Result
from aar.demo.pictures import spectrogram, token_grid
from aar.demo.uploads import read_clip, read_vector
from aar.loading.codes_file import save_codes

#: Errors that mean "this input is refused" and become a message on the page.
REFUSED = (ValueError, TypeError, ImportError, OSError)


def _number(value, name: str, kind=float):
    if value is None or value == "":
        raise ValueError(f"{name} is empty: enter a number")
    if kind is int:
        if float(value) != int(float(value)):
            raise ValueError(f"{name} must be a whole number, got {value!r}")
        return int(float(value))
    return float(value)


def _png(rgb_HX3, path: Path) -> str:
    """Write an RGB picture as PNG (Gradio then serves the file as it is)."""
    from PIL import Image

    Image.fromarray(rgb_HX3).save(path, compress_level=1)  # small pictures: speed over size
    return str(path)


class Handlers:
    """The page's callbacks over one engine, writing files under ``folder`` (the app's temp folder)."""

    def __init__(self, engine: DemoEngine, folder: str | Path) -> None:
        self.engine = engine
        self.folder = Path(folder)

    # ---------------------------------------------------------------------------------- helpers
    def _out(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="out-", dir=self.folder))

    def knobs(self, cfg, top_k, top_p, temperature, seed) -> Knobs:
        return Knobs(cfg=_number(cfg, "cfg"), top_k=_number(top_k, "top-k", int),
                     top_p=_number(top_p, "top-p"), temperature=_number(temperature, "temperature"),
                     seed=_number(seed, "seed", int))

    def clip(self, path):
        return read_clip(path, self.folder, self.engine.settings)

    def condition(self, source, prompt, vector_path, clip):
        vector = None
        if source == CONDITIONS[1] and vector_path:
            dim = self.engine.gen.config.cond_dim
            vector = read_vector(vector_path, self.folder, self.engine.settings, dim)
        return self.engine.condition(source, prompt=prompt, clip=clip, vector=vector)

    def _preview_outputs(self, event: Preview, out: Path, ladder: list):
        rate = self.engine.sample_rate
        path = write_audio(out / f"preview_{event.sample}_{event.window}_{event.index + 1:02d}.wav",
                           event.audio, rate)
        picture = _png(spectrogram(event.audio[0], rate), path.with_suffix(".png"))
        caption = f"{event.index + 1}/{event.num_scales} · {event.elapsed:.2f} s"
        gallery = gr.skip()  # unchanged: the ladder shows the first window of the first sample
        if event.sample == 0 and event.window == 0:
            ladder.append((picture, caption))
            gallery = list(ladder)
        where = f"sample {event.sample + 1}/{event.num_samples}"
        if event.num_windows > 1:
            where += f", window {event.window + 1}/{event.num_windows}"
        status = f"{where}, scale {event.index + 1}/{event.num_scales} after {event.elapsed:.2f} s"
        return status, str(path), picture, gallery

    def _finals(self, result: Result, out: Path, stem: str, with_codes: bool):
        rate = self.engine.sample_rate
        players, files = [], []
        for j, (audio, codes, seed) in enumerate(zip(result.audio, result.codes, result.seeds)):
            wav = write_audio(out / f"{stem}_{j}_seed{seed}.wav", audio, rate)
            files += [str(wav), str(write_audio(wav.with_suffix(".flac"), audio, rate))]
            if with_codes and codes is not None:
                files.append(str(save_codes(wav.with_suffix(".codes"), codes, self.engine.gen.tokenizer,
                                            model=self.engine.model, precision=self.engine.gen.precision)))
            players.append(str(wav))
        most = self.engine.settings.max_samples
        updates = [gr.update(value=p, visible=True) for p in players]
        updates += [gr.update(value=None, visible=False)] * (most - len(players))
        return updates, files

    def _run(self, stream, stem: str, with_codes: bool = False):
        """Page updates from an engine stream: status, preview, spectrogram, ladder, *finals, files."""
        out, ladder = self._out(), []
        most = self.engine.settings.max_samples
        keep = [gr.skip()] * (most + 1)
        try:
            for event in stream:
                if isinstance(event, Preview):
                    yield (*self._preview_outputs(event, out, ladder), *keep)
                    continue
                players, files = self._finals(event, out, stem, with_codes)
                status = (f"done: {len(event.audio)} sample(s) in {event.elapsed:.2f} s "
                          f"(precision {self.engine.precision})")
                yield (status, gr.skip(), gr.skip(), gr.skip(), *players, files)
        except REFUSED as err:
            raise gr.Error(str(err)) from None

    # ---------------------------------------------------------------------------------- the tabs
    def generate(self, source, prompt, reference, vector, cfg, top_k, top_p, temperature, seed, seconds,
                 num_samples):
        try:
            knobs = self.knobs(cfg, top_k, top_p, temperature, seed)
            clip = self.clip(reference) if source == CONDITIONS[3] and reference else None
            clap = self.condition(source, prompt, vector, clip)
            stream = self.engine.generate(clap, knobs, seconds=_number(seconds, "seconds"),
                                          num_samples=_number(num_samples, "number of samples", int))
        except REFUSED as err:
            raise gr.Error(str(err)) from None
        yield from self._run(stream, "generated", with_codes=True)

    def vary(self, clip_path, keep_scales, source, prompt, vector, cfg, top_k, top_p, temperature, seed,
             num_samples):
        try:
            knobs = self.knobs(cfg, top_k, top_p, temperature, seed)
            clip = self.clip(clip_path)
            clap = self.condition(source, prompt, vector, clip)
            stream = self.engine.vary(clip, clap, knobs,
                                      keep_scales=_number(keep_scales, "scales to keep", int),
                                      num_samples=_number(num_samples, "number of variations", int))
        except REFUSED as err:
            raise gr.Error(str(err)) from None
        yield from self._run(stream, "variation")

    def edit(self, clip_path, mode, start, end, add_seconds, source, prompt, vector, cfg, top_k, top_p,
             temperature, seed):
        try:
            knobs = self.knobs(cfg, top_k, top_p, temperature, seed)
            clip = self.clip(clip_path)
            clap = self.condition(source, prompt, vector, clip)
            if mode == EDIT_MODES[0]:
                stream = self.engine.inpaint(clip, clap, knobs, start=_number(start, "start"),
                                             end=_number(end, "end"))
            elif mode == EDIT_MODES[1]:
                add = _number(add_seconds, "seconds to add")
                stream = self.engine.extend(clip, clap, knobs, add_seconds=add)
            else:
                raise ValueError(f"mode must be one of {list(EDIT_MODES)}, got {mode!r}")
        except REFUSED as err:
            raise gr.Error(str(err)) from None
        yield from self._run(stream, "inpainted" if mode == EDIT_MODES[0] else "continued")

    def tokenize(self, clip_path, num_scales):
        """The token picture, the decode from the first k scales, the codes file, and the codes (state)."""
        try:
            codes = self.engine.tokenize(self.clip(clip_path))
            out = self._out()
            path = save_codes(out / "clip.codes", codes, self.engine.gen.tokenizer, model=self.engine.model)
            picture = _png(token_grid(codes, self.engine.gen.config.codebook_size), out / "tokens.png")
            audio = self._ladder(codes, num_scales, out)
        except REFUSED as err:
            raise gr.Error(str(err)) from None
        return picture, audio, str(path), codes

    def ladder(self, codes, num_scales):
        """The decode of the stored codes from their first k scales."""
        if codes is None:
            raise gr.Error("tokenize a clip first")
        try:
            return self._ladder(codes, num_scales, self._out())
        except REFUSED as err:
            raise gr.Error(str(err)) from None

    def _ladder(self, codes, num_scales, out: Path) -> str:
        k = _number(num_scales, "scales to decode", int)
        S = self.engine.gen.config.num_scales
        if not 1 <= k <= S:
            raise ValueError(f"scales to decode must lie in [1, {S}], got {k}")
        audio = self.engine.ladder(codes, k)
        return str(write_audio(out / f"first_{k:02d}_scales.wav", audio, self.engine.sample_rate))


#: The two jobs of the Inpaint / continue tab.
EDIT_MODES = ("inpaint a range", "continue the clip")
