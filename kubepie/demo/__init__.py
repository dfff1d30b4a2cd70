"""``kubepie demo``: everything on one machine, for trying KubePie out. Never for production.

What it runs: a development-only OpenID provider on loopback (:mod:`~kubepie.demo.issuer`,
demo users with fixed passwords), a sample data tree with home, group and shared areas
(:mod:`~kubepie.demo.sample`), and ``kubepie serve`` over both with a static directory and the
local backend (:mod:`~kubepie.demo.runner`); it prints the URLs, the logins and commands that
work as printed (:mod:`~kubepie.demo.banner`).

Layers, one direction: ``runner`` (processes, signals) → ``issuer`` (the ASGI provider) and
``sample`` (files) → ``config`` and ``banner`` (pure: the generated configuration, the printed
text) → ``grants`` and ``keys`` (authorization codes, PKCE, refresh tokens; the signing key)
→ ``accounts`` (the demo users, pure data) → ``errors``. This package may import ``identity``
and the ``kubepie`` packages whose public interfaces it drives (settings, credentials); nothing
imports it but the CLI. Nothing happens at import time.
"""
