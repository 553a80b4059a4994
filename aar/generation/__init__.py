"""Generation with the AAR transformer: the next-scale loop and everything that drives it.

Owns: ``next_scale`` (the loop: one scale per step, guidance, KV cache), ``sampling`` (top-k/top-p draws
with an explicit ``torch.Generator``, pure functions), ``options`` (the sampling arguments, validated
once), ``teacher_forcing`` (logits and log-likelihood of known codes), ``window`` (the contract the modes
below need of a generator), ``editing`` (variations, inpainting, continuation) and ``long_generation``
(audio longer than one window).
May import: ``aar.nn``, ``aar.precision``, ``aar.codes``, ``aar.config``, ``aar.errors``; ``editing`` and
``long_generation`` also the tokenizer (they encode audio), and drive the generator only through
``window.WindowGenerator``.
"""
