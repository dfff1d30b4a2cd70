"""Errors raised by :mod:`kubepie.operator`.

The tree::

    OperatorError          base
    └── ConfigurationError the operator's settings cannot work (named in the message)

API failures are :mod:`kubepie.kube.errors`; the handlers let kopf retry them.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of the errors of :mod:`kubepie.operator`."""


class ConfigurationError(OperatorError):
    pass
