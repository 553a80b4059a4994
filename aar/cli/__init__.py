"""The ``aar`` command: argument parsing, one function per subcommand, reports. The only package that prints.

Owns: ``program`` (the parser and the entry point ``main``), ``commands`` (what each subcommand does),
``eval_parser`` and ``eval_commands`` (``aar eval``), ``reports`` (``aar info`` and the JSON/table reports).
May import: every other package of aar; nothing imports it but ``aar.__main__``.
"""

from aar.cli.program import build_parser, main, run_script

__all__ = ["build_parser", "main", "run_script"]
