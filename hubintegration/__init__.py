"""JupyterHub integration: KubeSpawner hooks, compute-instance profiles, sidecars.

Layer rules (checked by import-linter): may import ``identity``; never ``kubepie`` or ``gpu``.
JupyterHub, KubeSpawner and oauthenticator objects are touched only in the hook modules that a
Hub's ``extraConfig`` installs; profile expansion and pod-spec changes are pure functions.
"""
