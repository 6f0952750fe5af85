"""
The cache key names the credentials in use, not the look of the environment (tokens/credential_facts.py).

Pods under EKS Pod Identity or IRSA share every environment variable and token path; what tells
their identities apart is the subject of the token in that path. These tests build such
environments (and shared AWS files, access keys), check that the identity and the locator of a
source follow the credentials boto3 would use, and that a token rotation keeps both.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator, Sequence
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airflow_ecr import process_state
from airflow_ecr.registry import EcrRegistry, parse_registry_host
from airflow_ecr.settings import EcrSettings
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.credential_facts import environment_facts, read_small_file, token_facts
from airflow_ecr.tokens.sources import EcrTokenSource
from airflow_ecr.tokens.token import EcrToken
from helpers.fake_http import QuietHandler, loopback_url, serving

REG = parse_registry_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com")
POD_IDENTITY_URI = "http://169.254.170.23/v1/credentials"
SA_A = "system:serviceaccount:etl:role-a"
SA_B = "system:serviceaccount:ml:role-b"


def jwt(sub: str, iat: int = 1_700_000_000, iss: str = "https://oidc.eks.eu-west-1.amazonaws.com/id/C1") -> str:
    """A Kubernetes-style service-account token (unsigned: only its claims matter here)."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"iss": iss, "sub": sub, "aud": ["pods.eks.amazonaws.com"], "iat": iat, "exp": iat + 3600}
    claims["kubernetes.io"] = {"pod": {"name": f"task-{iat}", "uid": f"uid-{iat}"}}
    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An environment with no AWS settings at all, and a home whose ~/.aws the test controls."""
    import os

    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never wait for IMDS in a test
    monkeypatch.setenv("AIRFLOW_CONN_AWS_POD", json.dumps({"conn_type": "aws"}))
    return tmp_path


def pod_identity(monkeypatch: pytest.MonkeyPatch, token_file: Path, sub: str, iat: int = 1_700_000_000) -> None:
    """This process as an EKS Pod Identity pod of service account ``sub`` (same URI and path for every pod)."""
    token_file.write_text(jwt(sub, iat))
    monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", POD_IDENTITY_URI)
    monkeypatch.setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(token_file))


def keys(aws_conn_id: str | None = "aws_pod") -> tuple[str | None, str]:
    """(locator, identity) of a new source, as a new task process computes them."""
    source = EcrTokenSource.from_connection(aws_conn_id)
    return source.locator, source.identity


def test_pod_identity_pods_of_two_service_accounts_never_share_a_key(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = home / "eks-pod-identity-token"
    pod_identity(monkeypatch, token_file, SA_A)
    pod_a = keys()
    pod_identity(monkeypatch, token_file, SA_B)
    pod_b = keys()
    assert pod_a[0] != pod_b[0] and pod_a[1] != pod_b[1]
    settings_b = EcrTokenSource.from_settings({}).identity
    pod_identity(monkeypatch, token_file, SA_A)
    assert EcrTokenSource.from_settings({}).identity != settings_b  # the secrets backend's source too


def test_a_rotated_token_of_the_same_service_account_keeps_the_key(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = home / "eks-pod-identity-token"
    pod_identity(monkeypatch, token_file, SA_A, iat=1_700_000_000)
    before = keys()
    pod_identity(monkeypatch, token_file, SA_A, iat=1_700_003_600)  # kubelet's hourly rotation, another pod
    assert keys() == before


class _PodTokenSource(EcrTokenSource):
    """A real connection source whose ECR call is replaced: the token names the service account that asked."""

    def fetch(self, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        import os

        sub = token_facts(read_small_file(os.environ["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"]))[2]
        now = time.time()
        return {
            r.registry_id: EcrToken("AWS", f"pw-for-{sub}", f"https://{r.host}", now + 3600, now) for r in registries
        }


def test_a_shared_host_cache_hands_each_pod_its_own_role_token(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two pods of one node, a hostPath cache: the second pod must not be served the first one's token."""
    cache = EcrSettings(cache_dir=home / "node-cache")
    token_file = home / "eks-pod-identity-token"
    pod_identity(monkeypatch, token_file, SA_A)
    assert TokenCache(cache).get_one(_PodTokenSource(aws_conn_id="aws_pod"), REG).password == f"pw-for-{SA_A}"
    process_state.reset()  # the next task is another process, in another pod
    pod_identity(monkeypatch, token_file, SA_B)
    assert TokenCache(cache).get_one(_PodTokenSource(aws_conn_id="aws_pod"), REG).password == f"pw-for-{SA_B}"


def test_web_identity_keys_follow_the_token_subject_and_the_role(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token_file = home / "irsa-token"
    monkeypatch.setenv("AWS_ROLE_ARN", "arn:aws:iam::111111111111:role/etl")
    monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token_file))
    token_file.write_text(jwt(SA_A))
    first = keys()
    token_file.write_text(jwt(SA_A, iat=1_700_007_200))
    assert keys() == first  # rotated
    token_file.write_text(jwt(SA_B))
    assert keys()[1] != first[1] and keys()[0] != first[0]
    token_file.write_text(jwt(SA_A, iss="https://oidc.eks.eu-west-1.amazonaws.com/id/OTHER-CLUSTER"))
    assert keys()[1] != first[1]


def test_a_connection_web_identity_token_file_counts_by_its_subject(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = home / "federated-token"
    extra = {
        "role_arn": "arn:aws:iam::111111111111:role/etl",
        "assume_role_method": "assume_role_with_web_identity",
        "assume_role_with_web_identity_federation": "file",
        "assume_role_with_web_identity_token_file": str(token_file),
    }
    monkeypatch.setenv("AIRFLOW_CONN_AWS_POD", json.dumps({"conn_type": "aws", "extra": extra}))
    token_file.write_text(jwt(SA_A))
    first = keys()[1], EcrTokenSource.from_settings(extra).identity
    token_file.write_text(jwt(SA_B))
    assert keys()[1] != first[0] and EcrTokenSource.from_settings(extra).identity != first[1]


CREDENTIALS = """\
[default]
aws_access_key_id = key-id-default-1
aws_secret_access_key = {secret}

[deploy]
aws_access_key_id = {deploy_key}
aws_secret_access_key = deploy-secret
"""


def test_shared_credentials_files_count_by_their_profiles_access_keys(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws = home / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text(CREDENTIALS.format(secret="s1", deploy_key="key-id-deploy-1"))
    first = keys()
    (aws / "credentials").write_text(CREDENTIALS.format(secret="s2", deploy_key="key-id-deploy-1"))
    assert keys() == first  # only a secret changed: never part of the key
    (aws / "credentials").write_text(CREDENTIALS.format(secret="s1", deploy_key="key-id-deploy-2"))
    assert keys()[0] != first[0] and keys()[1] != first[1]  # any profile (a connection may name it)

    other = home / "other-credentials"
    other.write_text(CREDENTIALS.format(secret="s1", deploy_key="key-id-deploy-3"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(other))
    assert keys()[1] not in {first[1]}
    monkeypatch.delenv("AWS_SHARED_CREDENTIALS_FILE")

    config = home / "config"
    config.write_text("[profile ci]\nrole_arn = arn:aws:iam::111111111111:role/a\nsource_profile = default\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    role_a = keys()
    config.write_text("[profile ci]\nrole_arn = arn:aws:iam::111111111111:role/b\nsource_profile = default\n")
    assert keys()[1] != role_a[1]


def test_environment_access_keys_count_by_key_id_never_by_secret(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-id-env-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-1")
    first = keys()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret-2")
    assert keys() == first
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key-id-env-2")
    assert keys()[1] != first[1]


def test_the_facts_never_hold_a_secret(home: Path) -> None:
    aws = home / ".aws"
    aws.mkdir()
    (aws / "credentials").write_text(CREDENTIALS.format(secret="the-secret-key", deploy_key="key-id-deploy-1"))
    (aws / "config").write_text("[profile p]\ncredential_process = fetch-creds --password hunter2\n")
    token = "opaque-ecs-container-token"
    environ = {
        "HOME": str(home),
        "AWS_SECRET_ACCESS_KEY": "env-secret",
        "AWS_SESSION_TOKEN": "env-session-token",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/task-1",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": token,
    }
    facts = repr(environment_facts(environ, read_small_file))
    for secret in ("the-secret-key", "hunter2", token, "env-secret", "env-session-token"):
        assert secret not in facts
    assert "key-id-deploy-1" in facts and "/v2/credentials/task-1" in facts
    other_token = environment_facts({**environ, "AWS_CONTAINER_AUTHORIZATION_TOKEN": token + "-2"}, read_small_file)
    assert repr(other_token) != facts  # an opaque token counts by its hash


# -- with real botocore: the container credentials endpoint of EKS Pod Identity, on 127.0.0.1 ----


@pytest.fixture
def pod_identity_agent() -> Iterator[str]:
    """A Pod Identity agent: the credentials it returns depend on the service account of the token sent."""

    class Agent(QuietHandler):
        def do_GET(self) -> None:
            sub = token_facts(self.headers.get("Authorization", ""))[2]
            body = {
                "AccessKeyId": "ASIA" + sub.rsplit(":", 1)[-1].upper().replace("-", ""),
                "SecretAccessKey": "agent-secret",
                "Token": "agent-session-token",
                "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600)),
            }
            self.reply(200, body)

    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Agent)) as server:
        yield f"{loopback_url(server)}/v1/credentials"


def test_boto3_resolves_two_identities_where_the_keys_differ(
    home: Path, monkeypatch: pytest.MonkeyPatch, pod_identity_agent: str
) -> None:
    import boto3

    token_file = home / "eks-pod-identity-token"
    seen = {}
    for sub in (SA_A, SA_B):
        pod_identity(monkeypatch, token_file, sub)
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", pod_identity_agent)
        access_key = boto3.session.Session().get_credentials().get_frozen_credentials().access_key
        seen[access_key] = keys()
    assert set(seen) == {"ASIAROLEA", "ASIAROLEB"}  # boto3 really resolves two identities ...
    (a_locator, a_identity), (b_locator, b_identity) = seen.values()
    assert a_locator != b_locator and a_identity != b_identity  # ... and the cache keeps them apart
