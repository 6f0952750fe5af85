"""The AWS side of the emulator: ECR (JSON 1.1), STS ``GetCallerIdentity`` (query), KMS (JSON 1.1) and
AWS Signer ``GetRevocationStatus`` (REST-JSON).

ECR's ``DescribeImageScanFindings``, KMS and AWS Signer answer from their own modules
(:mod:`~airflow_ecr.testing.emulator.scans`, :mod:`~airflow_ecr.testing.emulator.kms`,
:mod:`~airflow_ecr.testing.emulator.signer`); the token calls' fault switches (throttle, server
errors, delay, down regions) apply to token calls only, the key switches and ``deny_actions`` to all.

Each handler takes one request's headers and body, applies the fault switches, hands out tokens
under the token policy (:mod:`airflow_ecr.testing.emulator.state`), records the call and returns
the answer; the HTTP server (:mod:`airflow_ecr.testing.emulator.server`) only moves bytes.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape as xml_escape

from airflow_ecr.registry import region_partition
from airflow_ecr.testing.emulator.kms import KMS_TARGET_PREFIX, KmsKeys
from airflow_ecr.testing.emulator.model import (
    ACCOUNT_RE,
    CREDENTIAL_RE,
    ECR_PUBLIC_TARGET_PREFIX,
    ECR_TARGET_PREFIX,
    SIGNER_TARGET_PREFIX,
    STS_TARGET_PREFIX,
    STS_XMLNS,
    EmulatorError,
)
from airflow_ecr.testing.emulator.scans import ScanStore
from airflow_ecr.testing.emulator.signer import REVOCATIONS_PATH, RevocationStore
from airflow_ecr.testing.emulator.state import EmulatorState, _Token


class AwsApi(EmulatorState):
    """The emulator's state, answering the AWS protocols (the base of ``EcrEmulator``)."""

    # The image policy's services (made by EcrEmulator): ECR scans, AWS Signer revocations, KMS keys.
    scans: ScanStore
    revocations: RevocationStore
    kms_keys: KmsKeys

    # -- ECR, AWS JSON 1.1 ------------------------------------------------------------------
    def handle_api(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one AWS JSON 1.1 request; returns (status, JSON body).

        :param headers: request headers, names in lower case.
        :param body: the raw request body.
        """
        target = headers.get("x-amz-target", "")
        call = new_call(target)
        try:
            result = self._dispatch(target, headers, body, call)
            status = 200
        except EmulatorError as err:
            call["outcome"] = err.code
            status, result = err.status, {"__type": err.code, "message": err.message}
        call["end"] = time.time()  # with "time": the interval the call was being answered
        with self._lock:
            self._calls.append(call)
        return status, result

    def _authenticate(self, headers: dict[str, str], call: dict[str, Any]) -> str:
        """Check the SigV4 Authorization header's shape and key; returns the region it was signed for."""
        authorization = headers.get("authorization")
        if not authorization:
            raise EmulatorError("MissingAuthenticationTokenException", "Missing Authentication Token")
        match = CREDENTIAL_RE.search(authorization)
        if not match:
            raise EmulatorError(
                "IncompleteSignatureException",
                "Authorization header requires 'Credential' parameter of the form "
                "AKID/yyyymmdd/region/service/aws4_request",
            )
        call["access_key_id"], call["region"] = match.group(1), match.group(3)
        region: str = match.group(3)
        with self._lock:
            if match.group(1) in self._faults.invalid_keys:
                raise EmulatorError(
                    "UnrecognizedClientException", "The security token included in the request is invalid."
                )
            if match.group(1) in self._faults.expired_keys:
                raise EmulatorError("ExpiredTokenException", "The security token included in the request is expired")
        if region_partition(region) not in {region_partition(r) for _, r in self._registries}:
            # Keys of one partition are unknown in every other (aws, aws-cn, aws-us-gov, ...).
            raise EmulatorError("UnrecognizedClientException", "The security token included in the request is invalid.")
        return region

    def _check_allowed(self, service: str, action: str) -> None:
        """AccessDeniedException for an action the ``deny_actions`` switch names (``Action`` or ``service:Action``)."""
        with self._lock:
            denied = self._faults.deny_actions
        if action in denied or f"{service}:{action}" in denied:
            raise EmulatorError(
                "AccessDeniedException",
                f"User: arn:aws:iam::{self._default_account}:user/x is not authorized to perform: "
                f"{service}:{action} on resource: *",
            )

    def _dispatch(self, target: str, headers: dict[str, str], body: bytes, call: dict[str, Any]) -> dict[str, Any]:
        region = self._authenticate(headers, call)
        try:
            request = json.loads(body or b"{}")
        except ValueError as exc:
            raise EmulatorError("SerializationException", f"request body is not JSON: {exc}") from exc
        if not isinstance(request, dict):
            raise EmulatorError("SerializationException", "request body must be a JSON object")

        if target.startswith(ECR_TARGET_PREFIX):
            self._check_allowed("ecr", target.removeprefix(ECR_TARGET_PREFIX))
        if target.startswith(KMS_TARGET_PREFIX):
            return self._kms(target.removeprefix(KMS_TARGET_PREFIX), request, region)
        if target == ECR_TARGET_PREFIX + "DescribeImageScanFindings":
            account = str(request.get("registryId") or self._default_account)
            call["registry_ids"] = [account]
            return self.scans.describe(request, account, region)
        public = target == ECR_PUBLIC_TARGET_PREFIX + "GetAuthorizationToken"
        private = target == ECR_TARGET_PREFIX + "GetAuthorizationToken"
        if target == ECR_TARGET_PREFIX + "DescribePullThroughCacheRules":
            return self._pull_through_cache_rules(request, region)
        if not (public or private):
            raise EmulatorError(
                "UnknownOperationException",
                f"operation {target or '(no X-Amz-Target)'} is not emulated",
            )
        registry_ids = self._registry_ids(request) if private else None
        call["registry_ids"] = registry_ids

        with self._lock:
            delay = self._faults.delay
        if delay:
            time.sleep(delay)
        accounts = registry_ids or [self._default_account]
        with self._lock:
            faults = self._faults  # read again: a reset may have happened during the delay
            if region in faults.down_regions:
                raise EmulatorError("ServiceUnavailableException", f"ECR in {region} is unavailable (emulated)", 503)
            if faults.server_error:
                faults.server_error -= 1
                raise EmulatorError("ServerException", "Internal service error (emulated)", status=500)
            if faults.throttle:
                faults.throttle -= 1
                raise EmulatorError("ThrottlingException", "Rate exceeded")
            if private and self._rate_limited(region):
                # ECR's own limit (state.py, bucket.py): 400 ThrottlingException, as ECR answers it.
                raise EmulatorError("ThrottlingException", "Rate exceeded")
            deny = faults.deny
            denied_ids = accounts if deny is True else [a for a in accounts if deny and a in deny]
            if denied_ids:
                caller = denied_ids[0]
                action = "ecr-public" if public else "ecr"
                raise EmulatorError(
                    "AccessDeniedException",
                    f"User: arn:aws:iam::{caller}:user/x is not authorized to perform: "
                    f"{action}:GetAuthorizationToken on resource: *",
                )
            if public:
                token = self._token_for(self._public)
                call["tokens_issued_at"] = [token.issued_at]
                public_data = self._auth_data(token)
                public_data["expiresAt"] -= faults.clock_skew
                return {"authorizationData": public_data}
            registries = []
            for account_id in accounts:
                registry = self._registries.get((account_id, region))
                if registry is None:
                    raise EmulatorError(
                        "InvalidParameterException",
                        f"Invalid parameter at 'registryIds': registry {account_id} is not emulated in "
                        f"region {region} (emulated: {self._describe()})",
                    )
                registries.append(registry)
            data = []
            call["tokens_issued_at"] = []
            for registry in registries:
                token = self._token_for(registry)
                call["tokens_issued_at"].append(token.issued_at)
                entry = self._auth_data(token)
                entry["expiresAt"] -= faults.clock_skew
                entry["proxyEndpoint"] = f"https://{registry.account_id}.dkr.ecr.{registry.region}.amazonaws.com"
                data.append(entry)
            return {"authorizationData": data}

    @staticmethod
    def _registry_ids(request: dict[str, Any]) -> list[str] | None:
        ids = request.get("registryIds")
        if ids is None:
            return None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise EmulatorError(
                "InvalidParameterException", "Invalid parameter at 'registryIds': expected a non-empty list"
            )
        for registry_id in ids:
            if not ACCOUNT_RE.match(registry_id):
                raise EmulatorError(
                    "InvalidParameterException",
                    f"Invalid parameter at 'registryIds' failed to satisfy constraint: "
                    f"'{registry_id}' is not a 12-digit registry id",
                )
        return ids

    def _pull_through_cache_rules(self, request: dict[str, Any], region: str) -> dict[str, Any]:
        """``DescribePullThroughCacheRules``: the ``pull_through_rules`` fault's prefixes, one page."""
        account = str(request.get("registryId") or self._default_account)
        with self._lock:
            prefixes = list(self._faults.pull_through_rules)
        rules = [
            {
                "ecrRepositoryPrefix": prefix,
                "upstreamRegistryUrl": "registry-1.docker.io",
                "registryId": account,
                "upstreamRegistry": "docker-hub",
            }
            for prefix in prefixes
        ]
        return {"pullThroughCacheRules": rules}

    @staticmethod
    def _auth_data(token: _Token) -> dict[str, Any]:
        encoded = base64.b64encode(f"AWS:{token.password}".encode()).decode()
        return {"authorizationToken": encoded, "expiresAt": token.expires_at}

    def _kms(self, action: str, request: dict[str, Any], region: str) -> dict[str, Any]:
        """KMS ``GetPublicKey`` and ``Sign`` (JSON 1.1, target ``TrentService.<Action>``)."""
        self._check_allowed("kms", action)
        if action == "GetPublicKey":
            return self.kms_keys.get_public_key(request, self._default_account, region)
        if action == "Sign":
            return self.kms_keys.sign(request, self._default_account, region)
        raise EmulatorError("UnknownOperationException", f"operation {KMS_TARGET_PREFIX}{action} is not emulated")

    # -- AWS Signer, REST-JSON ----------------------------------------------------------------
    def handle_rest(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Answer one AWS Signer REST-JSON request (``GET /revocations``); returns (status, JSON body).

        Errors are answered as REST-JSON services do: the code in ``x-amzn-ErrorType`` and the
        body (the server sets the header from ``code``).

        :param method: the HTTP method.
        :param path: the request path with its query.
        :param headers: request headers, names in lower case.
        """
        parts = urlsplit(path)
        call = new_call(SIGNER_TARGET_PREFIX + "GetRevocationStatus")
        try:
            if (method, parts.path) != ("GET", REVOCATIONS_PATH):
                call["target"] = f"{SIGNER_TARGET_PREFIX}{method} {parts.path}"
                raise EmulatorError("UnknownOperationException", f"{method} {parts.path} is not emulated", 404)
            self._authenticate(headers, call)
            self._check_allowed("signer", "GetRevocationStatus")
            result = self.revocations.status(parse_qs(parts.query))
            status = 200
        except EmulatorError as err:
            call["outcome"] = err.code
            status = {"AccessDeniedException": 403, "TooManyRequestsException": 429}.get(err.code, err.status)
            result = {"code": err.code, "message": err.message}
        call["end"] = time.time()
        with self._lock:
            self._calls.append(call)
        return status, result

    # -- STS, query protocol ------------------------------------------------------------------
    def handle_query(self, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        """Answer one AWS query-protocol request (STS ``GetCallerIdentity``); returns (status, XML).

        :param headers: request headers, names in lower case.
        :param body: the raw form-encoded request body.
        """
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", [""])[0]
        with self._lock:
            unserved = self._faults.sts_unserved
        if unserved:
            # An ECR-only endpoint asked for STS: ECR's JSON answer to a request that is not its own
            # (not recorded: STS never saw the call).
            return 404, json.dumps({"__type": "UnknownOperationException", "message": None}).encode()
        call: dict[str, Any] = {
            "time": time.time(),
            "target": STS_TARGET_PREFIX + action,
            "region": None,
            "registry_ids": None,
            "access_key_id": None,
            "outcome": "ok",
        }
        request_id = str(uuid.uuid4())
        try:
            match = CREDENTIAL_RE.search(headers.get("authorization", ""))
            if not match:
                raise EmulatorError("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
            access_key, call["region"] = match.group(1), match.group(3)
            call["access_key_id"] = access_key
            if action != "GetCallerIdentity":
                raise EmulatorError("InvalidAction", f"operation {action or '(no Action)'} is not emulated")
            with self._lock:
                if access_key in self._faults.invalid_keys:
                    raise EmulatorError(
                        "InvalidClientTokenId", "The security token included in the request is invalid.", 403
                    )
                if access_key in self._faults.expired_keys:
                    raise EmulatorError("ExpiredToken", "The security token included in the request is expired", 403)
            account = self._default_account
            result = (
                f"<GetCallerIdentityResult><Arn>arn:aws:iam::{account}:user/{xml_escape(access_key)}</Arn>"
                f"<UserId>{xml_escape(access_key)}</UserId><Account>{account}</Account></GetCallerIdentityResult>"
            )
            xml = (
                f'<GetCallerIdentityResponse xmlns="{STS_XMLNS}">{result}'
                f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata>"
                "</GetCallerIdentityResponse>"
            )
            status = 200
        except EmulatorError as err:
            call["outcome"] = err.code
            status = err.status
            xml = (
                f'<ErrorResponse xmlns="{STS_XMLNS}"><Error><Type>Sender</Type><Code>{err.code}</Code>'
                f"<Message>{xml_escape(err.message)}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>"
            )
        call["end"] = time.time()
        with self._lock:
            self._calls.append(call)
        return status, xml.encode()


def new_call(target: str) -> dict[str, Any]:
    """The record of one call as it starts (``calls()`` lists them): what it asked, nothing known yet."""
    return {
        "time": time.time(),
        "target": target,
        "region": None,
        "registry_ids": None,
        "access_key_id": None,
        "outcome": "ok",
        "tokens_issued_at": None,
    }
