"""Per-user file servers on demand (the PieCut / PieDeck / PieEat parts of the design).

:class:`kubepie.backends.base.Backend` is the plug point the router uses: ``ensure`` an
identity's server and get its :class:`~kubepie.backends.base.Upstream`, ``touch`` it on
activity, ``report_failure`` when it cannot be reached, ``aclose`` at shutdown.
:class:`kubepie.backends.local.LocalBackend` runs one ``kubepie fileserver`` process per user on
this machine, forked by a pre-imported helper process (:mod:`kubepie.backends.zygote`).

Layers: ``local`` (the service) → ``process`` and ``readiness`` (I/O adapters) → ``policy``
(pure decisions) → ``base`` and ``errors`` (data). This package may import ``identity`` and
``kubepie.fileserver`` (the server it starts); never the router, ``hubintegration`` or ``gpu``.
Nothing here has import-time side effects; metrics are injected (:mod:`.metrics`).
"""
