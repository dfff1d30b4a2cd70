"""``kubepie demo``: everything on one machine, for trying KubePie out. Never for production.

What it runs: a development-only OpenID provider on loopback (:mod:`~kubepie.demo.issuer`,
demo users with fixed passwords), a sample data tree with home, group and shared areas
(:mod:`~kubepie.demo.sample`), and ``kubepie serve`` over both with a static directory and the
local backend (:mod:`~kubepie.demo.runner`); it prints the URLs, the logins and commands that
work as printed (:mod:`~kubepie.demo.banner`).

Layers, one direction: ``runner`` (processes, signals) → ``issuer`` (the ASGI provider) →
``tokens`` (token claims and signing) → ``grants`` and ``keys`` (codes, PKCE, refresh tokens;
the signing key); ``runner`` → ``sample`` (files) and ``banner`` → ``config`` (pure: the
generated configuration and the printed text); everything → ``accounts`` (the demo users, pure
data) → ``errors``. Of the other ``kubepie`` packages it uses only the public interface of
``kubepie.credentials`` (to mint the printed credential); ``kubepie serve`` runs as a child
process, configured by file. Nothing imports this package but the CLI, and nothing happens at
import time.
"""
