"""How fast and how exactly the models multiply: float32, bfloat16 and int8 paths, and the choice among them.

Owns: ``policy`` (``precision=`` of ``from_pretrained``: fp32, bf16, int8, auto), ``cpu`` (what this
processor offers: its features and the int8 kernel's behaviour), ``int8`` (int8 weights with per-row
quantised activations), ``reduced`` (bfloat16/float16 matrix weights around a float32 stream),
``placement`` (where the generator's weights live, and in which dtype).
May import: ``aar.nn`` (whose modules it converts), ``aar.config``, ``aar.errors``.
"""


def __getattr__(name: str):
    """``aar.precision.apply_precision`` and the rest of aar 0.1's ``aar.precision`` module, now in
    ``aar.precision.policy`` (deprecated; removed in aar 0.3)."""
    import importlib
    import warnings

    policy = importlib.import_module("aar.precision.policy")
    if name.startswith("_") or not hasattr(policy, name):
        raise AttributeError(f"module 'aar.precision' has no attribute {name!r}")
    warnings.warn(f"aar.precision.{name} moved to aar.precision.policy.{name}; the old name will be "
                  "removed in aar 0.3", DeprecationWarning, stacklevel=2)
    return getattr(policy, name)
