"""The user's own pages: who-am-I, app credentials (create, list, revoke), logging out.

Credentials are managed in the router's store directly, as the JSON API does, for the
logged-in owner only. A new credential's secret is shown once, on the answer to the POST that
made it (``Cache-Control: no-store``), next to copy-ready client commands
(:mod:`kubepie.web.snippets`); it is never stored anywhere the page could show it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from kubepie.credentials.errors import InvalidCredentialRequest
from kubepie.credentials.models import Owner
from kubepie.web.errors import BadForm
from kubepie.web.guard import Guard, WebSession
from kubepie.web.snippets import SnippetValues, snippets

#: The lifetimes the create form offers: form value → (seconds or None, label).
LIFETIMES: dict[str, tuple[float | None, str]] = {
    "1d": (86400.0, "1 day"),
    "7d": (7 * 86400.0, "7 days"),
    "30d": (30 * 86400.0, "30 days"),
    "90d": (90 * 86400.0, "90 days"),
    "never": (None, "Never (until revoked)"),
}
DEFAULT_LIFETIME = "30d"


def owner_of(session: WebSession) -> Owner:
    ident = session.principal.identity
    return Owner(ident.issuer, ident.sub, ident.username)


@dataclass(frozen=True, slots=True)
class CreationForm:
    """The create form's fields, as the store takes them."""

    description: str
    expires_in: float | None
    read_only: bool
    prefix: str

    @classmethod
    def parse(cls, form: dict[str, str]) -> CreationForm:
        """Pure; :class:`BadForm` for a lifetime that is not offered (the store checks the
        rest: prefix, description)."""
        lifetime = form.get("expires", DEFAULT_LIFETIME)
        if lifetime not in LIFETIMES:
            raise BadForm("choose one of the offered lifetimes")
        return cls(
            description=form.get("description", "").strip(),
            expires_in=LIFETIMES[lifetime][0],
            read_only=form.get("read_only") == "on",
            prefix=form.get("prefix", "").strip(),
        )


class AccountPages:
    def __init__(self, guard: Guard) -> None:
        self.guard = guard

    def routes(self) -> list[BaseRoute]:
        g = self.guard
        return [
            Route("/whoami", g.handler(self.whoami), methods=["GET"]),
            Route("/credentials", g.handler(self.credentials), methods=["GET"]),
            Route("/credentials", g.handler(self.create), methods=["POST"]),
            Route("/credentials/{credential_id}/revoke", g.handler(self.revoke), methods=["POST"]),
            # Ahead of the router's own /logout: the POST is checked for the CSRF token first.
            Route("/logout", g.handler(self.logout), methods=["POST"]),
        ]

    async def whoami(self, request: Request) -> Response:
        session = await self.guard.require(request)
        settings = self.guard.settings
        context = self.guard.context(
            session,
            title="Who am I",
            nav="whoami",
            identity=session.principal.identity,
            source=settings.identity_source,
            detail=settings.identity_detail,
        )
        return self.guard.page("whoami.html", context)

    async def credentials(self, request: Request) -> Response:
        session = await self.guard.require(request)
        return await self._page(request, session)

    async def _page(
        self,
        request: Request,
        session: WebSession,
        *,
        created: object = None,
        examples: object = None,
        secret: str = "",
        form_error: str | None = None,
        form: dict[str, str] | None = None,
    ) -> Response:
        items = await self.guard.ctx.store.list_for(owner_of(session))
        context = self.guard.context(
            session,
            title="App credentials",
            nav="credentials",
            items=items,
            now=time.time(),
            lifetimes=LIFETIMES,
            default_lifetime=DEFAULT_LIFETIME,
            created=created,
            secret=secret,
            examples=examples or [],
            flash="Credential revoked." if request.query_params.get("done") == "revoked" else None,
            form_error=form_error,
            form=form or {},
        )
        return self.guard.page("credentials.html", context, 400 if form_error else 200)

    async def create(self, request: Request) -> Response:
        session = await self.guard.require(request)
        form = await self.guard.form(request)
        try:
            fields = CreationForm.parse(form)
            made = await self.guard.ctx.store.create(
                owner_of(session),
                description=fields.description,
                expires_in=fields.expires_in,
                read_only=fields.read_only,
                prefix=fields.prefix,
            )
        except (BadForm, InvalidCredentialRequest) as exc:
            # Said next to the form, which keeps what was typed.
            return await self._page(request, session, form_error=str(exc), form=form)
        settings = self.guard.settings
        values = SnippetValues(
            public_url=settings.public_url,
            s3_url=settings.s3_url,
            access_key_id=made.credential.access_key_id,
            secret_access_key=made.secret_access_key,
            default_mount=settings.default_mount,
            prefix=made.credential.prefix,
        )
        return await self._page(
            request,
            session,
            created=made.credential,
            examples=snippets(values),
            secret=made.secret_access_key,
        )

    async def revoke(self, request: Request) -> Response:
        session = await self.guard.require(request)
        await self.guard.form(request)
        await self.guard.ctx.store.revoke(owner_of(session), request.path_params["credential_id"])
        return RedirectResponse("/credentials?done=revoked", status_code=303)

    async def logout(self, request: Request) -> Response:
        await self.guard.form(request)
        return RedirectResponse("/logout", status_code=303)
