"""Jupyter server extension: ``GET /api/kubepie/status`` for the status-bar display.

Enable it in the notebook image (or with a config file from ``singleuser.extraFiles``)::

    {"ServerApp": {"jpserver_extensions": {"hubintegration.serverext": true}}}

Only this module imports ``jupyter_server``; the readings come from :mod:`hubintegration.status`.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from hubintegration.status import Sources, collect, sources_from_environment

ROUTE = "/api/kubepie/status"
_SETTINGS_KEY = "kubepie_status_sources"


class StatusHandler(APIHandler):
    @web.authenticated
    async def get(self) -> None:
        sources: Sources = self.settings[_SETTINGS_KEY]
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(await collect(sources)))


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "hubintegration.serverext"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    web_app = serverapp.web_app
    web_app.settings[_SETTINGS_KEY] = sources_from_environment(httpx.AsyncClient())
    route = url_path_join(web_app.settings["base_url"], ROUTE)
    web_app.add_handlers(".*$", [(route, StatusHandler)])
    serverapp.log.info("kubepie status extension at %s", route)
