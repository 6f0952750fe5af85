"""
The IAM policies of ``docs/permissions.md``, applied: the page's ```json title="NAME.json"``` blocks
are the one copy of each policy. moto_server (IAM enforcement switched on through its
``/moto-api/reset-auth``, moto's ``INITIAL_NO_AUTH_ACTION_COUNT``) validates each document and
answers airflow-ecr's own token fetch for an identity that has only that policy; moto's policy
evaluator checks the resource-level statements moto's ECR does not enforce (it authorizes every
ECR call against resource ``*``) and the operations moto does not emulate (ECR Public, imports).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto.iam.access_control import IAMPolicy, PermissionResult

from airflow_ecr.exceptions import EcrError
from airflow_ecr.registry import parse_registry_host
from airflow_ecr.tokens.sources import EcrTokenSource

PAGE = Path(__file__).resolve().parents[2] / "docs" / "permissions.md"
POLICY_BLOCK = re.compile(r'^```json title="(?P<name>[\w.-]+\.json)"\n(?P<body>.*?)^```$', re.MULTILINE | re.DOTALL)
ACCOUNT = "123456789012"
REGISTRY = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"


def repository(name: str, region: str = "eu-west-1", account: str = ACCOUNT) -> str:
    return f"arn:aws:ecr:{region}:{account}:repository/{name}"


PULL = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
TOKEN = ("ecr:GetAuthorizationToken", "*")
# What each policy must allow: the (action, resource) pairs of the feature's calls, for the page's
# example account and repositories; every action a policy names must be one of these (least privilege).
NEEDS: dict[str, set[tuple[str, str]]] = {
    "pull.json": {
        TOKEN,
        *((action, repository("ml/train")) for action in PULL),
        *((action, repository("ml/train", region="eu-central-1")) for action in PULL),  # a replica region
    },
    "ecr-public.json": {("ecr-public:GetAuthorizationToken", "*"), ("sts:GetServiceBearerToken", "*")},
    "pull-through-cache.json": {
        TOKEN,
        *(
            (action, repository("ecr-public/docker/library/python"))
            for action in (*PULL, "ecr:BatchImportUpstreamImage", "ecr:CreateRepository")
        ),
    },
    "doctor.json": {
        TOKEN,
        ("ecr:DescribePullThroughCacheRules", "*"),
        *((action, repository("ml/train")) for action in PULL),
    },
}
# What the policies must not allow: another account's or another prefix's repositories.
OUTSIDE = {
    "pull.json": [
        (action, resource)
        for action in PULL
        for resource in (repository("ops/secret"), repository("ml/x", account="210987654321"))
    ],
    "pull-through-cache.json": [("ecr:CreateRepository", repository("ml/train"))],
    "doctor.json": [("ecr:BatchGetImage", repository("ops/secret"))],
}


def page_policies() -> dict[str, dict[str, Any]]:
    return {m["name"]: json.loads(m["body"]) for m in POLICY_BLOCK.finditer(PAGE.read_text())}


def actions_of(policy: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for statement in policy["Statement"]:
        named = statement["Action"]
        found.update([named] if isinstance(named, str) else named)
    return found


def test_the_page_has_every_policy_and_each_allows_exactly_what_its_feature_calls() -> None:
    policies = page_policies()
    assert sorted(policies) == sorted(NEEDS), "docs/permissions.md's policies and this test's list differ"
    for name, policy in policies.items():
        evaluator = IAMPolicy(json.dumps(policy))
        refused = [
            need for need in sorted(NEEDS[name]) if evaluator.is_action_permitted(*need) != PermissionResult.PERMITTED
        ]
        assert not refused, f"{name} does not allow {refused}"
        extra = actions_of(policy) - {action for action, _ in NEEDS[name]}
        assert not extra, f"{name} allows {sorted(extra)}, which no airflow-ecr feature it is for calls"
        leaks = [
            pair for pair in OUTSIDE.get(name, []) if evaluator.is_action_permitted(*pair) == PermissionResult.PERMITTED
        ]
        assert not leaks, f"{name} allows more than its repositories: {leaks}"


def test_the_table_names_every_action_of_the_policies() -> None:
    table = PAGE.read_text().split("## By mode and feature", 1)[1].split("## The policies", 1)[0]
    named = {action for policy in page_policies().values() for action in actions_of(policy)}
    missing = sorted(action for action in named if f"`{action}`" not in table)
    assert not missing, f"docs/permissions.md's table does not name {missing}"


# -- applied: moto_server with IAM enforcement -----------------------------------------------
@pytest.fixture
def iam_users(moto_url: str) -> dict[str, tuple[str, str]]:
    """One IAM user per page policy (and one with none), access keys by policy name; then IAM enforced."""
    admin = {
        "endpoint_url": moto_url,
        "region_name": "eu-west-1",
        "aws_access_key_id": "setup",
        "aws_secret_access_key": "setup",
    }
    iam = boto3.client("iam", **admin)
    keys: dict[str, tuple[str, str]] = {}
    for name, policy in [*page_policies().items(), ("none", None)]:
        user = f"airflow-{name.removesuffix('.json')}"
        iam.create_user(UserName=user)
        if policy is not None:
            # moto validates the document as IAM does (grammar, actions' form, resources).
            arn = iam.create_policy(PolicyName=user, PolicyDocument=json.dumps(policy))["Policy"]["Arn"]
            iam.attach_user_policy(UserName=user, PolicyArn=arn)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        keys[name] = (key["AccessKeyId"], key["SecretAccessKey"])
    requests.post(f"{moto_url}/moto-api/reset-auth", data=b"0", timeout=10).raise_for_status()
    return keys


def client(moto_url: str, service: str, key: tuple[str, str]) -> Any:
    return boto3.client(
        service, endpoint_url=moto_url, region_name="eu-west-1", aws_access_key_id=key[0], aws_secret_access_key=key[1]
    )


def token_source(monkeypatch: pytest.MonkeyPatch, moto_url: str, key: tuple[str, str]) -> EcrTokenSource:
    conn_id = f"aws_{uuid.uuid4().hex[:8]}"
    connection = {
        "conn_type": "aws",
        "login": key[0],
        "password": key[1],
        "extra": {
            "region_name": "eu-west-1",
            "endpoint_url": moto_url,
            "config_kwargs": {"retries": {"total_max_attempts": 1}},
        },
    }
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(connection))
    return EcrTokenSource.from_connection(conn_id)


def test_airflow_ecr_gets_a_token_with_the_pull_policy_and_nothing_else(
    iam_users: dict[str, tuple[str, str]], moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = parse_registry_host(REGISTRY)
    tokens = token_source(monkeypatch, moto_url, iam_users["pull.json"]).fetch([registry])
    assert tokens[registry.registry_id].username == "AWS"
    ecr = client(moto_url, "ecr", iam_users["pull.json"])
    with pytest.raises(ClientError, match="not authorized to perform: ecr:DescribeRepositories"):
        ecr.describe_repositories()  # enforcement is on: what the policy leaves out is refused


def test_without_the_token_action_airflow_ecr_is_refused(
    iam_users: dict[str, tuple[str, str]], moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ECR Public policy has no ecr:GetAuthorizationToken: a private registry's token is refused.
    with pytest.raises(EcrError, match="GetAuthorizationToken"):
        token_source(monkeypatch, moto_url, iam_users["ecr-public.json"]).fetch([parse_registry_host(REGISTRY)])


def test_doctor_policy_lists_pull_through_rules_and_sts_needs_no_permission(
    iam_users: dict[str, tuple[str, str]], moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = parse_registry_host(REGISTRY)
    assert token_source(monkeypatch, moto_url, iam_users["doctor.json"]).fetch([registry])
    for name, refused in (("doctor.json", False), ("pull.json", True)):
        try:
            client(moto_url, "ecr", iam_users[name]).describe_pull_through_cache_rules()
            answer = "ok"
        except ClientError as err:
            answer = str(err)  # moto does not emulate the operation: anything but a refusal is enough
        assert ("not authorized to perform: ecr:DescribePullThroughCacheRules" in answer) is refused, (name, answer)
    identity = client(moto_url, "sts", iam_users["none"]).get_caller_identity()
    assert identity["Arn"].endswith(":user/airflow-none")
