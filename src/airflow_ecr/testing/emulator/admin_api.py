"""The emulator's loopback admin API (``/_emulator/...``): what tests in other processes drive it with.

Its client is :class:`airflow_ecr.testing.emulator_admin.EmulatorClient`; the endpoints are listed
in :mod:`airflow_ecr.testing.emulator`.
"""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

from airflow_ecr.testing.emulator.model import ADMIN_PREFIX
from airflow_ecr.testing.emulator.state import EmulatorState


class AdminApi(EmulatorState):
    """The emulator's state, answering its admin API (a base of ``EcrEmulator``)."""

    admin_token: str

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
        if method == "GET" and name.startswith("password/"):
            region = query.get("region", [None])[0]
            password, expires_at = self.password(name.split("/", 1)[1], region)
            return 200, {"password": password, "expires_at": expires_at}
        raise KeyError(f"no admin endpoint {method} {ADMIN_PREFIX}{name}")

    @staticmethod
    def _reject_unknown(request: dict[str, Any], known: set[str]) -> None:
        unknown = sorted(set(request) - known)
        if unknown:
            raise ValueError(f"unknown keys {unknown}; expected some of {sorted(known)}")
