"""Errors raised by :mod:`kubepie.settings`.

::

    ConfigError            the configuration cannot be used; ``problems`` lists every bad key,
    │                      each as ``key.path: what is wrong``
    └── ConfigFileError    the file cannot be read, is not YAML, or is not a mapping

Messages name keys and environment variables, never values: a bad secret is not echoed.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConfigError(Exception):
    """The configuration in ``source`` is not valid; ``problems`` names each bad key."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"invalid configuration in {source}:\n{lines}")


class ConfigFileError(ConfigError):
    pass
