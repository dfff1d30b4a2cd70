"""Commands inside the notebook: ``kubepie-token`` prints a valid access token, ``kubepie-arc``
runs an ARC client command with ``BEARER_TOKEN`` set.

The token comes from ``BEARER_TOKEN_FILE`` (written by the token helper) or, if that is
missing or expired, from the helper's loopback endpoint ``KUBEPIE_TOKEN_URL``.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from hubintegration.tokenhelper import jwt_expiry

#: A token closer than this to its expiry is not handed out (seconds). The helper refreshes
#: well before expiry, so a token it wrote has more left than this.
MIN_VALIDITY_S = 1.0


class NoToken(Exception):
    pass


def _usable(token: str, now: float) -> bool:
    expiry = jwt_expiry(token)
    return bool(token) and (expiry is None or expiry - now > MIN_VALIDITY_S)


def read_token(env: Mapping[str, str], now: float | None = None) -> str:
    """A currently valid access token, or :class:`NoToken` saying where it looked."""
    now = time.time() if now is None else now
    path = env.get("BEARER_TOKEN_FILE")
    if path:
        try:
            token = Path(path).read_text().strip()
        except OSError:
            token = ""
        if _usable(token, now):
            return token
    url = env.get("KUBEPIE_TOKEN_URL")
    if url and url.startswith(("http://127.0.0.1", "http://localhost")):
        try:
            direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with direct.open(url, timeout=5) as response:
                token = str(json.load(response).get("access_token", ""))
        except (OSError, ValueError):
            token = ""
        if _usable(token, now):
            return token
    raise NoToken(
        f"no valid access token in BEARER_TOKEN_FILE={path or '(unset)'} "
        f"or at KUBEPIE_TOKEN_URL={url or '(unset)'}"
    )


def token_main(argv: Sequence[str] | None = None) -> int:
    """``kubepie-token``: print the access token (for ``curl -H "Authorization: Bearer ..."``)."""
    try:
        print(read_token(os.environ))
    except NoToken as exc:
        print(f"kubepie-token: {exc}", file=sys.stderr)
        return 1
    return 0


def arc_main(argv: Sequence[str] | None = None) -> int:
    """``kubepie-arc COMMAND [ARGS...]``: exec an ARC command with ``BEARER_TOKEN`` set."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(
            "usage: kubepie-arc COMMAND [ARGS...]  (e.g. kubepie-arc arcsub job.xrsl)",
            file=sys.stderr,
        )
        return 2
    try:
        token = read_token(os.environ)
    except NoToken as exc:
        print(f"kubepie-arc: {exc}", file=sys.stderr)
        return 1
    env = {**os.environ, "BEARER_TOKEN": token}
    try:
        os.execvpe(args[0], args, env)  # noqa: S606 (the user's own command)
    except OSError as exc:
        print(f"kubepie-arc: cannot run {args[0]}: {exc.strerror}", file=sys.stderr)
        return 127
