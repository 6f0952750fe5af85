"""An Amazon ECR API emulator for tests: real HTTP, real boto3, real registries.

The emulator is a small HTTP server on a loopback address that speaks the AWS JSON 1.1 protocol
the way boto3 does, for ``ecr:GetAuthorizationToken`` (and ``ecr-public:GetAuthorizationToken``).
Point boto3 at it with ``endpoint_url`` (or ``AWS_ENDPOINT_URL_ECR``); any access key works, the
SigV4 signature is not verified, but the region is read from the ``Authorization`` header's
credential scope, as ECR routes by region.

Token policy
------------
Every emulated account (an account id in one region) has ONE valid password at a time, because a
registry's htpasswd file holds one entry per user and ECR's user is always ``AWS``. A call to
``GetAuthorizationToken`` mints a new token (a random password; the bcrypt line ``AWS:<hash>`` is
written atomically, temp file + ``os.replace``, to that account's htpasswd, which the registry
re-reads when it changes) when there is none, when the current one has expired, or when it has
passed ``rotate_fraction`` (default 0.5) of its life. Otherwise the call returns the current token
with its original ``expiresAt``. Minting makes the previous password fail at the registry at once,
exactly like a revocation. When a token expires a timer replaces the password with an unknown
random one, so the registry rejects expired tokens. ``token_ttl`` (default 43200 s, as ECR) and
``rotate_fraction`` can be changed at run time.

Rate limit
----------
As ECR, the emulator limits ``GetAuthorizationToken`` per caller account and region with a token
bucket (:mod:`~airflow_ecr.testing.emulator.bucket`): 200 calls at once, refilled at 20 per second;
a call that finds it empty is answered 400 ``ThrottlingException``. Every caller is the default
account (as STS says), so the calls of all keys in a region share one bucket, as the hosts of one
account do. ``bucket_capacity`` (0 turns the limit off) and ``bucket_refill`` are set like the token
policy; a reset fills the buckets again, and ``POST /_emulator/buckets {"level": n}`` leaves n calls
in them (0: drained, as by another deployment of the account).

STS ``GetCallerIdentity`` (query protocol: a form-encoded POST) is answered on the same URL, so an
Airflow AWS connection whose ``endpoint_url`` is the emulator works for both ``ecr`` and ``sts``: the
caller is the default account, its ARN ``arn:aws:iam::<account>:user/<access key id>``.

Fault switches (one list: the arguments of
:meth:`~airflow_ecr.testing.emulator.state.EmulatorState.set_faults`, which the testing recipe's
table is generated from), the list of calls received, revocation and the current password are
available in process (:class:`EcrEmulator` methods) and through a loopback admin API, so tests in
other processes can drive it. Loopback is shared by every user of the host, so each admin request
must carry the emulator's admin token (``Authorization: Bearer <EcrEmulator.admin_token>``; 401
without it): ``EmulatorClient(url, token=...)``, or, for the emulator of the project's development lab
(whose token the lab keeps 0600 in its directory), ``airflow_ecr_lab.emulator_client(lab_json)``::

    GET  /_emulator/health                 {"ok": true, "accounts": [...]}
    GET  /_emulator/calls                  [{"time", "end", "target", "region", "registry_ids",
                                             "access_key_id", "outcome", "tokens_issued_at"}, ...]
    POST /_emulator/reset                  clear calls and faults, fill the buckets
    GET|POST /_emulator/faults             {"<switch>": value, ...}: set_faults's arguments by name
    GET|POST /_emulator/config             {"token_ttl": s, "rotate_fraction": f,
                                            "bucket_capacity": n, "bucket_refill": per_second}
    GET|POST /_emulator/buckets            {"<account>/<region>": {"tokens", "capacity", "refill"}};
                                           POST {"level": n, "region": "..."(optional)}
    POST /_emulator/revoke                 {"account_id": "...", "region": "..."(optional)}
    GET  /_emulator/password/<account>     {"password", "expires_at"} (mints if none is valid)

    GET|POST /_emulator/scans              DescribeImageScanFindings's records (EmulatorClient.set_scan);
    POST /_emulator/scans/clear            POST {"repository", "digest", "status", "findings" |
                                           "enhanced_findings", "pending_seconds", ...}
    GET  /_emulator/signer/revocations     what GetRevocationStatus answers as revoked
    POST /_emulator/signer/revoke          {"profile_version_arn", "effective_time", "job_arn",
                                           "certificate_hash"} (any of them)
    POST /_emulator/signer/clear
    GET|POST /_emulator/kms/keys           KMS signing keys: POST {"key_spec", "aliases", "key_id",
    POST /_emulator/kms/clear              "private_key_pem"} answers the key's public part

The image policy's AWS APIs are answered from those records (a reset keeps them, as it keeps
tokens): ECR ``DescribeImageScanFindings`` (:mod:`~airflow_ecr.testing.emulator.scans`), KMS
``GetPublicKey`` and ``Sign`` (JSON 1.1, target ``TrentService.*``:
:mod:`~airflow_ecr.testing.emulator.kms`) and AWS Signer ``GetRevocationStatus`` (REST-JSON, ``GET
/revocations``: :mod:`~airflow_ecr.testing.emulator.signer`). All are served on the same URL: give
boto3 ``endpoint_url``, or ``AWS_ENDPOINT_URL_ECR`` / ``AWS_ENDPOINT_URL_KMS`` /
``AWS_ENDPOINT_URL_SIGNER``, or an AWS connection's ``endpoint_url``. AWS Signer serves
``GetRevocationStatus`` on ``data-signer.<region>``, so botocore puts ``data-`` before the
endpoint's host unless told not to: a Signer client of the emulator needs
``Config(inject_host_prefix=False)`` (a connection's ``config_kwargs``) or
``AWS_DISABLE_HOST_PREFIX_INJECTION=true``. The ``deny_actions`` switch
denies any of them (``DescribeImageScanFindings``, ``kms:GetPublicKey``,
``signer:GetRevocationStatus``); the calls are listed like the token calls (Signer's as
``AWSSigner.GetRevocationStatus``).

A call's ``tokens_issued_at`` lists when each token it handed out was minted (None for a failed
call): calls that list the same time handed out the same password, and a later time means the
earlier password was rotated out.

Command line (used by the lab)::

    python -m airflow_ecr.testing.emulator --config emulator.json --port-file port

with ``{"accounts": [{"account_id": "...", "region": "...", "htpasswd": "/path"}],
"default_account": "...", "token_ttl": 43200, "rotate_fraction": 0.5, "bucket_capacity": 200,
"bucket_refill": 20, "port": 0, "admin_token_file": "/path"}`` (the token in a file of the lab's,
never in the config itself).

Modules, one job each: :mod:`~airflow_ecr.testing.emulator.model` (the account, the error, the
constants), :mod:`~airflow_ecr.testing.emulator.state` (registries, tokens, token policy, faults,
calls), :mod:`~airflow_ecr.testing.emulator.bucket` (the rate limit),
:mod:`~airflow_ecr.testing.emulator.htpasswd` (a registry's password file),
:mod:`~airflow_ecr.testing.emulator.protocol` (the ECR, STS, KMS and Signer APIs),
:mod:`~airflow_ecr.testing.emulator.scans`, :mod:`~airflow_ecr.testing.emulator.signer` and
:mod:`~airflow_ecr.testing.emulator.kms` (the image policy's records),
:mod:`~airflow_ecr.testing.emulator.admin_api` (the admin API),
:mod:`~airflow_ecr.testing.emulator.server` (:class:`EcrEmulator`: HTTP on a loopback port) and
:mod:`~airflow_ecr.testing.emulator.cli`; the admin client is
:mod:`airflow_ecr.testing.emulator_admin`.
"""

from __future__ import annotations

from airflow_ecr.testing.emulator.cli import load_config, main
from airflow_ecr.testing.emulator.model import (
    BCRYPT_ROUNDS,
    DEFAULT_ROTATE_FRACTION,
    DEFAULT_TOKEN_TTL,
    ECR_PUBLIC_TARGET_PREFIX,
    ECR_TARGET_PREFIX,
    STS_TARGET_PREFIX,
    STS_XMLNS,
    EmulatedAccount,
    EmulatorError,
)
from airflow_ecr.testing.emulator.server import EcrEmulator
from airflow_ecr.testing.emulator_admin import EmulatorClient

__all__ = [
    "BCRYPT_ROUNDS",
    "DEFAULT_ROTATE_FRACTION",
    "DEFAULT_TOKEN_TTL",
    "ECR_PUBLIC_TARGET_PREFIX",
    "ECR_TARGET_PREFIX",
    "STS_TARGET_PREFIX",
    "STS_XMLNS",
    "EcrEmulator",
    "EmulatedAccount",
    "EmulatorClient",
    "EmulatorError",
    "load_config",
    "main",
]
