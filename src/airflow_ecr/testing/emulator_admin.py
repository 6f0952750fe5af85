"""The client of the ECR emulator's loopback admin API (``/_emulator/...``), from any process.

The one admin client: tests (the project's and yours) and the lab use it. Importing it does not
import the emulator's server. The endpoints are listed in :mod:`airflow_ecr.testing.emulator`.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlencode

# ECR's own token policy: the emulator's defaults (DEFAULT_TOKEN_TTL, DEFAULT_ROTATE_FRACTION).
ECR_TOKEN_TTL = 43200.0
ECR_ROTATE_FRACTION = 0.5


class EmulatorClient:
    """
    The emulator's loopback admin API (``/_emulator/...``), from any process: what a test of your
    own DAGs uses to count calls, switch faults on, or shorten token lifetimes.

    :param url: the emulator's URL (``EcrEmulator.url``, or ``emulator_url`` in the lab's lab.json).
    :param timeout: seconds to wait for each answer.
    :param token: the emulator's admin token (``EcrEmulator.admin_token``); for the lab's
        emulator, ``airflow_ecr_lab.emulator_client`` (the development lab) reads it from the lab directory.
    """

    def __init__(self, url: str, timeout: float = 10, *, token: str) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._authorization = f"Bearer {token}"
        # Loopback only: never route the lab's traffic through an HTTP proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _call(self, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(  # noqa: S310 - the emulator's own http://127.0.0.1 URL
            f"{self.url}/_emulator/{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": self._authorization},
            method="GET" if body is None else "POST",
        )
        with self._opener.open(request, timeout=self.timeout) as response:
            return json.loads(response.read() or b"null")

    def health(self) -> dict[str, Any]:
        """``{"ok": true, "accounts": [...]}`` when the emulator answers."""
        return dict(self._call("health"))

    def calls(self, access_key: str | None = None) -> list[dict[str, Any]]:
        """The API calls received so far (only those signed with ``access_key``, if given)."""
        return [c for c in self._call("calls") if access_key is None or c.get("access_key_id") == access_key]

    def reset(self) -> None:
        """Forget the calls and switch every fault off."""
        self._call("reset", {})

    def faults(self, **switches: Any) -> dict[str, Any]:
        """Set fault switches (see :meth:`EcrEmulator.set_faults`); return them all."""
        return dict(self._call("faults", switches))

    def config(self, **settings: Any) -> dict[str, Any]:
        """Set ``token_ttl`` / ``rotate_fraction`` / ``bucket_capacity`` / ``bucket_refill`` if given;
        return the token policy and the rate limit. A new token policy applies to tokens minted from
        then on (:meth:`revoke` makes the next call mint one)."""
        return dict(self._call("config", settings) if settings else self._call("config"))

    def buckets(self, level: float | None = None, region: str | None = None) -> dict[str, dict[str, float]]:
        """
        The rate limit's buckets (``<caller account>/<region>``: calls available now, capacity, refill);
        with ``level``, first leave that many calls in them (0: drained, as by another client of the account).

        :param level: calls available now, in ``region`` or in every emulated region.
        :param region: one region.
        """
        if level is None:
            return dict(self._call("buckets"))
        body: dict[str, Any] = {"level": level} if region is None else {"level": level, "region": region}
        return dict(self._call("buckets", body))

    def revoke(self, account_id: str, region: str | None = None) -> None:
        """Replace the account's password now: the registry rejects the tokens handed out so far.

        :param account_id: the account id.
        :param region: the region, needed only when the account is emulated in several.
        """
        body = {"account_id": account_id} if region is None else {"account_id": account_id, "region": region}
        self._call("revoke", body)

    def password(self, account_id: str, region: str | None = None) -> str:
        """The account's current registry password (minted if none is valid).

        :param account_id: the account id.
        :param region: the region, needed only when the account is emulated in several.
        """
        query = "" if region is None else "?" + urlencode({"region": region})
        return str(self._call(f"password/{account_id}{query}")["password"])

    def passwords(self, account_ids: Iterable[str]) -> set[str]:
        """The current registry passwords of ``account_ids`` (what a leak scan looks for).

        :param account_ids: account ids of the emulator.
        """
        return {self.password(account_id) for account_id in account_ids}

    @contextlib.contextmanager
    def ecr_policy(self, account_ids: Iterable[str], min_ttl: float = 3600.0) -> Iterator[None]:
        """
        ECR's own token policy (12 h tokens) for the block, if something left one with tokens
        shorter than ``min_ttl``: a test that counts ``GetAuthorizationToken`` calls would see a
        token expiring mid-run as an extra call. Tokens minted under the short policy are revoked;
        the previous policy is restored after the block.

        :param account_ids: the accounts whose tokens to revoke when the policy changes.
        :param min_ttl: the shortest token lifetime (seconds) kept as it is.
        """
        before = self.config()
        if before["token_ttl"] >= min_ttl:
            yield
            return
        self.config(token_ttl=ECR_TOKEN_TTL, rotate_fraction=ECR_ROTATE_FRACTION)
        for account_id in account_ids:
            self.revoke(account_id)
        try:
            yield
        finally:
            self.config(**before)
