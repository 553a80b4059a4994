"""How fast and how exactly the models multiply: float32, bfloat16 and int8 paths, and the choice among them.

Owns: ``policy`` (``precision=`` of ``from_pretrained``: fp32, bf16, int8, auto), ``cpu`` (what this
processor offers: its features and the int8 kernel's behaviour), ``int8`` (int8 weights with per-row
quantised activations), ``reduced`` (bfloat16/float16 matrix weights around a float32 stream),
``placement`` (where the generator's weights live, and in which dtype).
May import: ``aar.nn`` (whose modules it converts), ``aar.config``, ``aar.errors``.
"""
