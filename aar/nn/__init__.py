"""The paper's building blocks: SEANet codec halves, the scale quantizer and the AAR transformer.

Owns: ``conv`` and ``seanet`` (the codec), ``quantizer`` (16 temporal scales, one codebook each),
``block`` (AdaLN, cosine attention, feed-forward), ``transformer`` (the AAR stack and its step),
``kv_cache``, ``linear`` (the transformer's linear layer). Each block has one arithmetic path, the
official float32 one; int8 and bfloat16 are modules ``aar.precision`` swaps in.
May import: torch only; no config, no files, no other package of aar.
"""
