"""Where weights and codes come from and go to: files, folders, the Hugging Face Hub.

Owns: ``hub`` (resolving a name or path to files, offline rules), ``official`` (the official
checkpoints' key tables and their conversion to aar's layout), ``native`` (strict loading of aar's own
folders, built on the meta device), ``codes_file`` (``AudioCodes`` on disk), ``files`` (atomic writes:
nothing half-written), ``digest`` (the one hash of weights).
May import: ``aar.config``, ``aar.codes``, ``aar.errors`` and ``aar.version``; never a model.
"""
