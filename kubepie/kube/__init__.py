"""Talking to the Kubernetes API: the one adapter over the ``kubernetes`` client
(:mod:`.client`), its errors (:mod:`.errors`) and the ``FileServer`` custom resource as pure data
(:mod:`.resources`).

Used by the router's kubernetes backend (:mod:`kubepie.backends.kubernetes`), the operator
(:mod:`kubepie.operator`) and the admission webhook (:mod:`kubepie.admission`). Nothing here
has import-time side effects: a :class:`~.client.KubeApi` is built from a kubeconfig (or the
pod's service account) where the application is assembled.
"""
