"""The router (PiePass + PieCut + PieTrack): the one front door of KubePie.

It authenticates (browser login, bearer tokens, app credentials as Basic or SigV4), maps the
user to a POSIX identity through :mod:`identity`, makes sure that user's file server runs (a
:class:`~kubepie.router.servers.ServerPool`, i.e. a backend), forwards the request to it and
records the transfer.

Layers, one direction: ``server`` (both listeners in one event loop, signals) → ``app``
(assembly, lifespan) → ``dav``, ``s3front``, ``api``, ``login``
(handlers) → ``context`` (shared services, forwarding with one retry) → ``authn``,
``identities``, ``proxy``, ``upstream``, ``session``, ``accounting``, ``metrics`` (services and
adapters) → ``access``, ``paths``, ``responses`` (pure checks and rendering) → ``errors``.
``session`` is the only module importing ``cryptography``; ``upstream`` the only one importing
``httptools``; ``login`` the only one importing ``authlib`` (its protocol helpers: the
authorization URL and the PKCE challenge; the token request goes through the shared httpx
client). This package may import ``identity``, ``kubepie.credentials``, ``kubepie.s3``
(SigV4 and chunk verification, XML errors) and ``kubepie.settings``; it never imports a backend
(the backend is injected). Nothing happens at import time.
"""
