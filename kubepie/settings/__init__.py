"""The configuration of ``kubepie serve``: one YAML file, validated once at start.

:func:`~kubepie.settings.loader.load_config` reads the file, applies ``KUBEPIE_*`` environment
variables (secrets need never be written in the file) and returns the frozen
:class:`~kubepie.settings.models.KubePieSettings`, or raises
:class:`~kubepie.settings.errors.ConfigError` naming every bad key. ``examples/kubepie.yaml``
shows every key with its default.

Layers: ``loader`` (file and environment I/O) → ``models`` (the sections) → ``fields`` (value
types, pure parsers) → ``errors``. This package may import ``identity`` (mount specs) and
``kubepie.credentials`` (key parsing, credential policy); the router imports it, never the
reverse. Nothing happens at import time.
"""
