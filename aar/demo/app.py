"""The page: four tabs (Generate, Variations, Inpaint / continue, Tokenizer) over one ``DemoEngine``.

Each control maps onto one argument of the library (docs/demo.md lists them). The page loads nothing
from other hosts: the theme uses the system's fonts, and Gradio serves its own scripts.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from aar.demo.engine import CONDITIONS, DemoEngine
from aar.demo.handlers import EDIT_MODES, Handlers

#: System font stacks: a theme naming a web font would make the browser fetch it from its host.
SANS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO = ["ui-monospace", "monospace"]


def theme() -> gr.themes.Theme:
    """Gradio's default look with local fonts only."""
    return gr.themes.Default(font=SANS, font_mono=MONO)


def _condition_inputs(clip_label: str | None):
    """The condition radio with its prompt and vector upload (and a reference clip upload, if labelled)."""
    source = gr.Radio(list(CONDITIONS), value=CONDITIONS[0], label="condition")
    prompt = gr.Textbox(label="text prompt (needs the clap extra)", lines=1)
    reference = None
    with gr.Row():
        vector = gr.File(label="CLAP vector (.npy, 512 floats)", file_types=[".npy"], type="filepath",
                         height=120)
        if clip_label is not None:
            reference = gr.Audio(label=clip_label, type="filepath", sources=["upload"])
    return source, prompt, vector, reference


def _sampling_inputs():
    with gr.Accordion("sampling", open=True):
        with gr.Row():
            cfg = gr.Number(4.0, label="cfg (guidance)")
            top_k = gr.Number(200, label="top-k (0: all)", precision=0)
            top_p = gr.Number(0.95, label="top-p (0, 1]")
            temperature = gr.Number(1.0, label="temperature")
            seed = gr.Number(0, label="seed (sample j: seed + j)", precision=0)
    return [cfg, top_k, top_p, temperature, seed]


def _stream_outputs(engine: DemoEngine, final_label: str):
    """The outputs every streamed tab shares; the order ``Handlers._run`` yields."""
    status = gr.Markdown("", elem_classes="aar-status")
    with gr.Row():
        preview = gr.Audio(label="preview from the scales so far", type="filepath", interactive=False)
        picture = gr.Image(label="its spectrogram", type="filepath", interactive=False, height=160)
    ladder = gr.Gallery(label="coarse to fine: each scale as it finished", columns=4, height=240,
                        interactive=False)
    with gr.Row():
        players = [gr.Audio(label=f"{final_label} {j + 1}", type="filepath", interactive=False,
                            visible=j == 0, elem_classes="aar-final")
                   for j in range(engine.settings.max_samples)]
    files = gr.File(label="downloads", file_count="multiple", interactive=False)
    return [status, preview, picture, ladder, *players, files]


def _run_and_stop(label: str, elem_id: str | None = None) -> tuple[gr.Button, gr.Button]:
    """A row with the tab's primary button and its Stop button."""
    with gr.Row():
        return (gr.Button(label, variant="primary", elem_id=elem_id),
                gr.Button("Stop", elem_id=None if elem_id is None else "stop"))


def _on_model(buttons: tuple[gr.Button, gr.Button], handler, inputs: list, outputs: list,
              api_name: str) -> None:
    """Run ``handler`` on the model's queue (one request at a time) when the first button is
    pressed; the second cancels the running request at its next scale."""
    run, stop = buttons
    job = run.click(handler, inputs, outputs, api_name=api_name, concurrency_id="model")
    stop.click(None, None, None, cancels=[job], api_name=f"stop_{api_name}")


def build(engine: DemoEngine, folder: str | Path) -> gr.Blocks:
    """The Gradio app of ``engine``; uploads and results live under ``folder``.

    Every event goes through Gradio's queue, one at a time per event; the engine runs one request
    on the model at a time.
    """
    handlers = Handlers(engine, folder)
    limits = engine.settings
    with gr.Blocks(title="aar demo", analytics_enabled=False) as app:
        gr.Markdown(f"## aar: coarse-to-fine audio generation\n{engine.describe()} · clips up to "
                    f"{limits.max_clip_seconds:g} s, uploads up to {limits.max_upload_mb:g} MB",
                    elem_id="aar-model")
        with gr.Tab("Generate"), gr.Row():
            with gr.Column():
                source, prompt, vector, reference = _condition_inputs("reference clip (CLAP condition)")
                knobs = _sampling_inputs()
                with gr.Row():
                    seconds = gr.Number(1.0, label=f"seconds (up to {limits.max_seconds:g})")
                    count = gr.Slider(1, limits.max_samples, value=1, step=1, label="number of samples")
                buttons = _run_and_stop("Generate", elem_id="generate")
            with gr.Column():
                outputs = _stream_outputs(engine, "sample")
            _on_model(buttons, handlers.generate, [source, prompt, reference, vector, *knobs, seconds, count],
                      outputs, "generate")

        with gr.Tab("Variations"):
            clip = gr.Audio(label="clip to vary", type="filepath", sources=["upload"])
            keep = gr.Slider(1, engine.gen.config.num_scales, value=6, step=1, label="coarse scales kept")
            count = gr.Slider(1, limits.max_samples, value=1, step=1, label="number of variations")
            source, prompt, vector, _ = _condition_inputs(None)
            knobs = _sampling_inputs()
            buttons = _run_and_stop("Vary")
            outputs = _stream_outputs(engine, "variation")
            _on_model(buttons, handlers.vary, [clip, keep, source, prompt, vector, *knobs, count], outputs,
                      "vary")

        with gr.Tab("Inpaint / continue"):
            clip = gr.Audio(label="original clip", type="filepath", sources=["upload"])
            mode = gr.Radio(list(EDIT_MODES), value=EDIT_MODES[0], label="what to do")
            with gr.Row():
                start = gr.Number(0.25, label="regenerate from (s)")
                end = gr.Number(0.5, label="to (s); shorter than 1 s")
                add = gr.Number(1.0, label=f"or continue by (s, up to {limits.max_seconds:g})")
            source, prompt, vector, _ = _condition_inputs(None)
            knobs = _sampling_inputs()
            buttons = _run_and_stop("Run")
            outputs = _stream_outputs(engine, "result")
            _on_model(buttons, handlers.edit, [clip, mode, start, end, add, source, prompt, vector, *knobs],
                      outputs, "edit")

        with gr.Tab("Tokenizer"):
            clip = gr.Audio(label="clip to tokenize", type="filepath", sources=["upload"])
            k = gr.Slider(1, engine.gen.config.num_scales, value=engine.gen.config.num_scales, step=1,
                          label="decode from the first k scales")
            run = gr.Button("Tokenize", variant="primary")
            grid = gr.Image(label="tokens: one band per scale, coarse at the top, time to the right",
                            type="filepath", interactive=False)
            decoded = gr.Audio(label="decoded from the first k scales", type="filepath", interactive=False)
            codes_file = gr.File(label="codes (aar decode reads it)", interactive=False)
            codes = gr.State(None)
            run.click(handlers.tokenize, [clip, k], [grid, decoded, codes_file, codes], api_name="tokenize",
                      concurrency_id="model")
            k.release(handlers.ladder, [codes, k], decoded, api_name="ladder", concurrency_id="model")
    return app
