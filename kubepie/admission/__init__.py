"""PieSec: the admission webhook's decisions, as pure functions (:mod:`.review`).

The webhook is served by ``kubepie operator`` (kopf's webhook server, see
:mod:`kubepie.operator.kopf_app`); this package holds no I/O. It may import ``identity``.
"""
