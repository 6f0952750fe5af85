"""The emulator's vocabulary: the emulated account, the AWS-shaped error and the protocol constants."""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass

ECR_TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
ECR_PUBLIC_TARGET_PREFIX = "SpencerFrontendService."
# How STS calls are named in the call list (STS itself speaks the query protocol, with no target).
STS_TARGET_PREFIX = "AWSSecurityTokenServiceV20110615."
STS_XMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"
# How AWS Signer calls are named in the call list (Signer speaks REST-JSON, with no target).
SIGNER_TARGET_PREFIX = "AWSSigner."
DEFAULT_TOKEN_TTL = 43200.0
DEFAULT_ROTATE_FRACTION = 0.5
# Cost 5 keeps minting at ~2 ms; the registry accepts any bcrypt cost.
BCRYPT_ROUNDS = 5

# ECR's registry passwords are base64 of a JSON document of KMS ciphertext, over 2,500 characters
# long (aws/aws-cdk#32925): what a password costs (masking it, storing it) depends on its length.
PAYLOAD_BYTES = 1400
DATAKEY_BYTES = 180


def registry_password(expires_at: float) -> str:
    """A new registry password shaped and sized like ECR's (about 2,900 characters), random where ECR's is ciphertext.

    :param expires_at: when the token expires (ECR writes it into the document too).
    """
    document = {
        "payload": base64.b64encode(os.urandom(PAYLOAD_BYTES)).decode(),
        "datakey": base64.b64encode(os.urandom(DATAKEY_BYTES)).decode(),
        "version": "2",
        "type": "DATA_KEY",
        "expiration": int(expires_at),
    }
    return base64.b64encode(json.dumps(document, separators=(",", ":")).encode()).decode()


ACCOUNT_RE = re.compile(r"^[0-9]{12}$")
CREDENTIAL_RE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")
ADMIN_PREFIX = "/_emulator/"


class EmulatorError(Exception):
    """An error answered to the client in the AWS JSON 1.1 shape.

    :param code: the AWS error code (``__type``), e.g. ``ThrottlingException``.
    :param message: the human-readable message.
    :param status: the HTTP status.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class EmulatedAccount:
    """One private ECR registry: an account id in one region.

    :param account_id: the 12-digit AWS account id.
    :param region: the AWS region, e.g. ``eu-west-1``.
    :param htpasswd: the registry's htpasswd file that the emulator rewrites; None to only mint
        tokens without enforcing them anywhere.
    """

    account_id: str
    region: str
    htpasswd: str | None = None

    @property
    def host(self) -> str:
        """The registry host name, as in image names."""
        return f"{self.account_id}.dkr.ecr.{self.region}.amazonaws.com"

    @property
    def proxy_endpoint(self) -> str:
        """The ``proxyEndpoint`` ECR returns with the token."""
        return f"https://{self.host}"
