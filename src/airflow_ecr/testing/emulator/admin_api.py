"""The emulator's loopback admin API (``/_emulator/...``): what tests in other processes drive it with.

Its client is :class:`airflow_ecr.testing.emulator_admin.EmulatorClient`; the endpoints are listed
in :mod:`airflow_ecr.testing.emulator`.
"""

from __future__ import annotations

import hmac
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_ecr.testing.emulator.kms import KmsKeys
from airflow_ecr.testing.emulator.model import ADMIN_PREFIX
from airflow_ecr.testing.emulator.scans import SCAN_FIELDS, ScanStore, record_from_request
from airflow_ecr.testing.emulator.signer import RevocationStore
from airflow_ecr.testing.emulator.state import EmulatorState


class AdminApi(EmulatorState):
    """The emulator's state, answering its admin API (a base of ``EcrEmulator``)."""

    admin_token: str
    scans: ScanStore
    revocations: RevocationStore
    kms_keys: KmsKeys

    def handle_admin(self, method: str, path: str, body: bytes, authorization: str | None = None) -> tuple[int, Any]:
        """Answer one admin request under ``/_emulator/``; returns (status, JSON body).

        :param method: ``GET`` or ``POST``.
        :param path: the request path with its query.
        :param body: the raw request body.
        :param authorization: the request's ``Authorization`` header: ``Bearer <admin token>``.
        """
        if not hmac.compare_digest((authorization or "").encode(), f"Bearer {self.admin_token}".encode()):
            return 401, {
                "error": "the emulator's admin API needs its admin token (Authorization: Bearer <token>): "
                "EmulatorClient(url, token=...) or airflow_ecr_lab.emulator_client(lab_json)"
            }
        parts = urlsplit(path)
        name = parts.path[len(ADMIN_PREFIX) :].strip("/")
        try:
            request = json.loads(body) if body.strip() else {}
            if not isinstance(request, dict):
                raise ValueError("the request body must be a JSON object")
            return self._admin(method, name, request, parse_qs(parts.query))
        except KeyError as exc:
            return 404, {"error": str(exc.args[0]) if exc.args else "not found"}
        except (ValueError, TypeError) as exc:
            return 400, {"error": str(exc)}

    def _admin(self, method: str, name: str, request: dict[str, Any], query: dict[str, list[str]]) -> tuple[int, Any]:
        if (method, name) == ("GET", "health"):
            return 200, {"ok": True, "accounts": [a.__dict__ for a in self.accounts]}
        if (method, name) == ("GET", "calls"):
            return 200, self.calls()
        if (method, name) == ("POST", "reset"):
            self.reset()
            return 200, {"ok": True}
        if name == "faults" and method in ("GET", "POST"):
            if method == "POST":
                # Every switch the state has (set_faults takes each by its name in faults()).
                self._reject_unknown(request, set(self.faults()))
                self.set_faults(**request)
            return 200, self.faults()
        if name == "config" and method in ("GET", "POST"):
            if method == "POST":
                self._reject_unknown(request, set(self.config()))
                self.configure(**request)
            return 200, self.config()
        if name == "buckets" and method in ("GET", "POST"):
            if method == "POST":
                self._reject_unknown(request, {"level", "region"})
                if "level" not in request:
                    raise ValueError("buckets needs {'level': calls available now, 'region': ...(optional)}")
                self.set_bucket_level(request["level"], request.get("region"))
            return 200, self.buckets()
        if (method, name) == ("POST", "revoke"):
            self._reject_unknown(request, {"account_id", "region"})
            if "account_id" not in request:
                raise ValueError("revoke needs {'account_id': ...}")
            self.revoke(str(request["account_id"]), request.get("region"))
            return 200, {"ok": True}
        if name.startswith(("scans", "signer/", "kms/")):
            return self._policy_admin(method, name, request)
        if method == "GET" and name.startswith("password/"):
            region = query.get("region", [None])[0]
            password, expires_at = self.password(name.split("/", 1)[1], region)
            return 200, {"password": password, "expires_at": expires_at}
        raise KeyError(f"no admin endpoint {method} {ADMIN_PREFIX}{name}")

    def _policy_admin(self, method: str, name: str, request: dict[str, Any]) -> tuple[int, Any]:
        """The image policy's records: ECR scans, AWS Signer revocations, KMS keys."""
        if (method, name) == ("GET", "scans"):
            return 200, self.scans.listing()
        if (method, name) == ("POST", "scans"):
            self._reject_unknown(request, {"account_id", "region", "repository", "digest", *SCAN_FIELDS})
            if not isinstance(request.get("repository"), str) or not isinstance(request.get("digest"), str):
                raise ValueError("scans needs {'repository': ..., 'digest': 'sha256:...', 'status': ..., ...}")
            account_id, region = self._where(request)
            fields = {k: v for k, v in request.items() if k in SCAN_FIELDS}
            record = record_from_request(fields, time.time())
            self.scans.set(account_id, region, request["repository"], request["digest"], record)
            return 200, {"ok": True}
        if (method, name) == ("GET", "signer/revocations"):
            return 200, self.revocations.listing()
        if (method, name) == ("POST", "signer/revoke"):
            self._reject_unknown(request, {"profile_version_arn", "effective_time", "job_arn", "certificate_hash"})
            self.revocations.revoke(**request)
            return 200, {"ok": True}
        if (method, name) == ("GET", "kms/keys"):
            return 200, self.kms_keys.listing()
        if (method, name) == ("POST", "kms/keys"):
            self._reject_unknown(request, {"account_id", "region", "key_id", "key_spec", "aliases", "private_key_pem"})
            account_id, region = self._where(request)
            options = {k: request[k] for k in ("key_id", "key_spec", "aliases", "private_key_pem") if k in request}
            return 200, self.kms_keys.add(account_id, region, **options).describe()
        clears = {
            "scans/clear": self.scans.clear,
            "signer/clear": self.revocations.clear,
            "kms/clear": self.kms_keys.clear,
        }
        if method == "POST" and name in clears:
            clears[name]()
            return 200, {"ok": True}
        raise KeyError(f"no admin endpoint {method} {ADMIN_PREFIX}{name}")

    def _where(self, request: dict[str, Any]) -> tuple[str, str]:
        """The account (default: the emulator's default) and region (default: its first) a record is for."""
        account_id = str(request.get("account_id") or self._default_account)
        region = request.get("region")
        return account_id, self._find(account_id, None if region is None else str(region)).region

    @staticmethod
    def _reject_unknown(request: dict[str, Any], known: set[str]) -> None:
        unknown = sorted(set(request) - known)
        if unknown:
            raise ValueError(f"unknown keys {unknown}; expected some of {sorted(known)}")
