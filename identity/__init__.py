"""Shared identity: bearer tokens, claims → POSIX identity, user directories, NSS files.

Layer rules (checked by import-linter):

* ``identity`` is the base of the tree: it imports nothing from ``kubepie``, ``hubintegration``
  or ``gpu``; all three may import it.
* ``models`` and ``errors`` are pure data. ``claims``, ``scopes`` and ``nss`` are pure functions
  over them (no I/O; ``claims`` adds one small async service that maps through an injected
  ``Directory``). ``tokens``, ``jwks``, ``introspection`` and the directory adapters do I/O;
  ``ldap3`` is imported only in ``identity.ldap``, ``jwt`` only in ``identity.tokens`` and
  ``identity.jwks``, and the HTTP client is always injected.
* Every refusal is an :mod:`identity.errors` exception whose class tells the caller which HTTP
  status to answer (401, 403 or 503). Nothing here ever falls back to a default UID.
"""
