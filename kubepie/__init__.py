"""KubePie: the router, per-user file servers, backends, credentials, admission and accounting.

Layer rules (checked by import-linter): ``kubepie`` may import ``identity``; it never imports
``hubintegration`` or ``gpu``. Inside, dependencies point one way: entry points (``kubepie.cli``,
the ASGI apps) → services (policy) → adapters (protocol, I/O) → models (pure data). Pure
protocol code (SigV4, S3 XML, PROPFIND bodies) does no I/O. Nothing happens at import time.
"""
