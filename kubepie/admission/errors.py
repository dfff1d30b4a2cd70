"""Errors of :mod:`kubepie.admission`.

The tree::

    Refused    a Pod the webhook must not admit; the message is what the requester sees
"""

from __future__ import annotations


class Refused(Exception):
    """The Pod is refused; ``str(exc)`` says why (no secret in it)."""
