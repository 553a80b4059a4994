"""The generator's condition: CLAP text and audio embeddings, and the checks a condition passes.

Owns: ``clap`` (``ClapEncoder``, the public face of CLAP), ``backends`` (the networks behind it: the
``laion_clap`` package or Hugging Face ``transformers``, loaded safely), ``conditions`` (CLAP vectors,
prompts or audio turned into the (B, 512) unit rows the generator takes).
May import: ``aar.loading``, ``aar.audio``, ``aar.config``, ``aar.errors``; never a model package.
"""
