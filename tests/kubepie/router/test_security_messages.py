"""An app credential that does not authenticate is refused with one message, whatever was
wrong (no such key, wrong secret), and no message names a credential's internal id. S3 keeps
AWS's error codes, which clients act on, with messages free of internal ids too."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.kubepie.router.conftest import Router, basic
from tests.kubepie.router.test_s3 import s3_client

DEPTH = {"Depth": "1"}


async def _credential(router: Router, user: str) -> dict[str, Any]:
    token = router.provider.mint(router.provider.claims_for(user))
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        made = await http.post(
            f"{router.url}/api/v1/credentials",
            json={},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert made.status_code == 201, made.text
    cred: dict[str, Any] = made.json()
    return cred


def _other_key(key: str) -> str:
    """A well-formed access key id that is not ``key``."""
    return key[:-1] + ("A" if key[-1] != "A" else "B")


async def test_webdav_basic_refusals_say_one_thing(router: Router) -> None:
    cred = await _credential(router, "carol")
    unknown = (_other_key(cred["access_key_id"]), cred["secret_access_key"])
    wrong = (cred["access_key_id"], "x" * 40)
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        answers = [
            await http.request("PROPFIND", f"{router.url}/dav/home/", auth=auth, headers=DEPTH)
            for auth in (unknown, wrong)
        ]
        api = [await http.get(f"{router.url}/api/v1/whoami", auth=a) for a in (unknown, wrong)]
        ok = await http.request(
            "PROPFIND", f"{router.url}/dav/home/", auth=basic(cred), headers=DEPTH
        )
    assert ok.status_code == 207, ok.text
    assert [a.status_code for a in answers] == [401, 401]
    assert answers[0].text == answers[1].text == "401 invalid access key or secret\n"
    assert [a.status_code for a in api] == [401, 401]
    assert (
        api[0].json()
        == api[1].json()
        == {
            "error": "CredentialRefused",
            "message": "invalid access key or secret",
        }
    )
    for response in (*answers, *api):
        assert cred["id"] not in response.text


async def test_s3_refusals_keep_aws_codes_without_internal_ids(router: Router) -> None:
    cred = await _credential(router, "carol")
    unknown = {**cred, "access_key_id": _other_key(cred["access_key_id"])}
    wrong = {**cred, "secret_access_key": "x" * 40}
    codes = []
    for bad in (unknown, wrong):
        with pytest.raises(ClientError) as refused:
            await asyncio.to_thread(s3_client(router, bad).list_objects_v2, Bucket="home")
        error = refused.value.response["Error"]
        assert cred["id"] not in error["Message"]
        codes.append(error["Code"])
    assert codes == ["InvalidAccessKeyId", "SignatureDoesNotMatch"]

    token = router.provider.mint(router.provider.claims_for("carol"))
    async with httpx.AsyncClient(trust_env=False, timeout=30) as http:
        gone = await http.delete(
            f"{router.url}/api/v1/credentials/{cred['id']}",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert gone.status_code == 204
        dav = await http.request(
            "PROPFIND", f"{router.url}/dav/home/", auth=basic(cred), headers=DEPTH
        )
    assert dav.status_code == 401
    assert cred["id"] not in dav.text
    with pytest.raises(ClientError) as revoked:
        await asyncio.to_thread(s3_client(router, cred).list_objects_v2, Bucket="home")
    assert cred["id"] not in revoked.value.response["Error"]["Message"]
