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

    # -- the image policy's records: ECR scans, AWS Signer revocations, KMS keys --------------
    def set_scan(
        self,
        repository: str,
        digest: str,
        status: str | None = "COMPLETE",
        *,
        findings: Iterable[dict[str, Any]] | None = None,
        enhanced_findings: Iterable[dict[str, Any]] | None = None,
        description: str | None = None,
        tags: Iterable[str] = (),
        pending_seconds: float = 0,
        pending_answers: int = 0,
        pending_status: str = "IN_PROGRESS",
        completed_at: float | None = None,
        account_id: str | None = None,
        region: str | None = None,
    ) -> None:
        """
        Set what ``DescribeImageScanFindings`` answers for one image (replacing what was set).

        :param repository: the repository name.
        :param digest: the image's digest, ``sha256:…``.
        :param status: the scan's status (``COMPLETE``, ``ACTIVE`` for enhanced scanning,
            ``IN_PROGRESS`` for one that stays pending, ``FAILED``, ``UNSUPPORTED_IMAGE``, ...);
            None: the image exists but has no scan (``ScanNotFoundException``).
        :param findings: basic findings in ECR's shape ``{name, uri, severity, attributes}``.
        :param enhanced_findings: Inspector findings in ECR's shape (makes the scan enhanced).
        :param description: the status's description.
        :param tags: tags that name the image too.
        :param pending_seconds: answer ``pending_status`` for this long first, then ``status``.
        :param pending_answers: answer ``pending_status`` to this many calls first, then ``status``.
        :param pending_status: ``IN_PROGRESS`` or ``PENDING``.
        :param completed_at: ``imageScanCompletedAt`` (epoch seconds); default when the pending phase ends.
        :param account_id: the registry (default: the emulator's default account).
        :param region: the region (default: the account's first).
        """
        body: dict[str, Any] = {
            "repository": repository,
            "digest": digest,
            "status": status,
            "tags": list(tags),
            "pending_seconds": pending_seconds,
            "pending_answers": pending_answers,
            "pending_status": pending_status,
        }
        optional = {
            "findings": None if findings is None else list(findings),
            "enhanced_findings": None if enhanced_findings is None else list(enhanced_findings),
            "description": description,
            "completed_at": completed_at,
            "account_id": account_id,
            "region": region,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        self._call("scans", body)

    def scans(self) -> list[dict[str, Any]]:
        """The scan records set: account_id, region, repository, digest and the status answered now."""
        return list(self._call("scans"))

    def clear_scans(self) -> None:
        """Forget every scan record (a reset keeps them, as it keeps tokens)."""
        self._call("scans/clear", {})

    def revoke_signer(
        self,
        *,
        profile_version_arn: str | None = None,
        effective_time: float | None = None,
        job_arn: str | None = None,
        certificate_hash: str | None = None,
    ) -> None:
        """
        Revoke in the emulated AWS Signer: ``GetRevocationStatus`` lists what is revoked.

        :param profile_version_arn: a signing profile version ARN.
        :param effective_time: epoch seconds from which that profile's signatures are revoked (default: all).
        :param job_arn: a signing job ARN.
        :param certificate_hash: a certificate hash.
        """
        body = {
            "profile_version_arn": profile_version_arn,
            "effective_time": effective_time,
            "job_arn": job_arn,
            "certificate_hash": certificate_hash,
        }
        self._call("signer/revoke", {k: v for k, v in body.items() if v is not None})

    def clear_signer_revocations(self) -> None:
        """Revoke nothing any more."""
        self._call("signer/clear", {})

    def add_kms_key(
        self,
        *,
        key_id: str | None = None,
        key_spec: str = "ECC_NIST_P256",
        aliases: Iterable[str] = (),
        private_key_pem: str | None = None,
        account_id: str | None = None,
        region: str | None = None,
    ) -> dict[str, Any]:
        """
        Register an asymmetric signing key with the emulated KMS (``GetPublicKey``, ``Sign``).

        :param key_id: the key id (default: a new UUID).
        :param key_spec: ``ECC_NIST_P256``, ``ECC_NIST_P384``, ``ECC_NIST_P521``, ``RSA_2048``, ... of
            a new key the emulator makes.
        :param aliases: alias names, each ``alias/…``.
        :param private_key_pem: a PEM private key to use instead of a new one.
        :param account_id: the owning account (default: the emulator's default account).
        :param region: the key's region (default: the account's first).
        :return: ``{"KeyId", "Arn", "KeySpec", "Aliases", "PublicKey" (base64 DER), "SigningAlgorithms"}``.
        """
        body: dict[str, Any] = {"key_spec": key_spec, "aliases": list(aliases)}
        optional = {"key_id": key_id, "private_key_pem": private_key_pem, "account_id": account_id, "region": region}
        body.update({k: v for k, v in optional.items() if v is not None})
        return dict(self._call("kms/keys", body))

    def kms_keys(self) -> list[dict[str, Any]]:
        """The registered KMS keys (public parts only)."""
        return list(self._call("kms/keys"))

    def clear_kms_keys(self) -> None:
        """Forget every KMS key."""
        self._call("kms/clear", {})

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
