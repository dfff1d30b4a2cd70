"""``kubepie operator``: PieDeck, PieEat and NSS sync on Kubernetes, and the admission webhook.

* :mod:`.manifests` (pure): the Secret and the Pod of a FileServer.
* :mod:`.status` (pure): a FileServer's status from its Pod; idle decisions of the reaper.
* :mod:`.reconcile` (service): make a FileServer's Secret and Pod exist, recreate a dead Pod,
  report status; reap idle FileServers.
* :mod:`.nss` (service): keep the ``passwd``/``group`` ConfigMap in step with the directory.
* :mod:`.certs` (pure + files): the webhook's self-signed serving certificate.
* :mod:`.kopf_app` (adapter): the only module importing kopf; wires handlers and the webhook.
* :mod:`.settings`: the operator's settings.

This package may import ``identity``, ``kubepie.kube``, ``kubepie.admission`` and
``kubepie.settings``; never the router, the web UI or the local backend.
"""
