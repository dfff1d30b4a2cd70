"""The web UI of the router: server-rendered pages for people with a browser.

A landing page with the login, a file browser over the user's mounts (upload, download, new
folder, rename, delete), app credentials with ready-to-paste client commands, who-am-I, and
error pages that say what happened and what to do. Jinja2 templates and one stylesheet are
package data; the only script (upload progress, copy buttons) is optional: every form works
without it.

Layers, one direction: ``app`` (assembly: the router's ``web_routes`` and ``error_page``
plug points) → ``browser``, ``account`` (pages and forms) → ``guard`` (session, CSRF check,
error pages for every handler) → ``files``, ``upload`` (as the user, through the router's
forwarding to their file server; nothing here opens a user's file) → ``errorpages``,
``render`` → ``csrf``, ``listing``, ``snippets``, ``settings`` (pure) → ``errors``.

This package may import :mod:`kubepie.router` (its context, authentication, paths and
forwarding), :mod:`kubepie.credentials` models, :mod:`kubepie.settings` and :mod:`identity`;
the router never imports it (``kubepie serve`` wires it in). ``jinja2`` is imported only by
``render``, ``python_multipart`` only by ``upload``. Nothing happens at import time.
"""
