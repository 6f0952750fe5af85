"""tokens/sources.py: the one token source; what it costs before a fetch, and what names an identity."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_ecr import _compat
from airflow_ecr.registry import parse_registry_host
from airflow_ecr.tokens.sources import EcrTokenSource
from helpers.isolation import skip_unless_missing_connections_resolve


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = _compat.BaseHook.get_connection

    def counting(conn_id: str, *args: object, **kwargs: object) -> object:
        calls.append(conn_id)
        return real(conn_id, *args, **kwargs)

    monkeypatch.setattr(_compat.BaseHook, "get_connection", staticmethod(counting))
    return calls


def test_the_locator_needs_no_connection_lookup(monkeypatch: pytest.MonkeyPatch, lookups: list[str]) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_LOC", json.dumps({"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}))
    source = EcrTokenSource.from_connection("aws_loc")
    before = source.locator
    assert lookups == [] and source.locator == before
    assert source.identity and lookups == ["aws_loc"]
    source.identity  # noqa: B018 - looked up once
    assert lookups == ["aws_loc"]


def test_the_locator_changes_with_an_environment_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_LOC", json.dumps({"conn_type": "aws", "extra": {"role_arn": "arn:a"}}))
    first = EcrTokenSource.from_connection("aws_loc").locator
    monkeypatch.setenv("AIRFLOW_CONN_AWS_LOC", json.dumps({"conn_type": "aws", "extra": {"role_arn": "arn:b"}}))
    assert EcrTokenSource.from_connection("aws_loc").locator != first
    assert EcrTokenSource.from_settings({"role_arn": "arn:b"}).locator is None


def test_identities_differ_by_connection_and_settings_but_never_by_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    one = EcrTokenSource.from_settings({"role_arn": "arn:a", "aws_secret_access_key": "s1"})
    other_secret = EcrTokenSource.from_settings({"role_arn": "arn:a", "aws_secret_access_key": "s2"})
    other_role = EcrTokenSource.from_settings({"role_arn": "arn:b"})
    assert one.identity == other_secret.identity != other_role.identity
    assert "s1" not in one.description and "arn:a" in one.description


def test_a_missing_connection_falls_back_to_the_default_chain_and_says_so(lookups: list[str]) -> None:
    skip_unless_missing_connections_resolve("no_such_aws_conn")
    source = EcrTokenSource.from_connection("no_such_aws_conn")
    assert source.connection() is None
    assert "no such Airflow connection" in source.description


@pytest.mark.parametrize("source_kind", ["connection", "session"])
def test_fips_registry_uses_the_fips_api_endpoint_and_keeps_the_connection_config(
    source_kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dkr.ecr-fips`` images get their token from ECR's FIPS endpoint, as the credential helper does."""
    from airflow_ecr.tokens.sources import EcrTokenSource

    extra = {"region_name": "us-east-1", "config_kwargs": {"retries": {"mode": "standard", "max_attempts": 7}}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_FIPS", json.dumps({"conn_type": "aws", "extra": extra}))
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_USE_FIPS_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    fips = parse_registry_host("111111111111.dkr.ecr-fips.us-east-1.amazonaws.com")
    plain = parse_registry_host("111111111111.dkr.ecr.us-east-1.amazonaws.com")

    def client(registry: Any) -> Any:
        if source_kind == "connection":
            return EcrTokenSource.from_connection("aws_fips").client("ecr", registry.region, fips=registry.fips)
        return EcrTokenSource.from_settings(extra).client("ecr", registry.region, fips=registry.fips)

    assert "ecr-fips.us-east-1" in client(fips).meta.endpoint_url
    assert "fips" not in client(plain).meta.endpoint_url
    # botocore counts the first attempt in total_max_attempts: max_attempts 7 is 8 in all.
    assert client(fips).meta.config.retries["total_max_attempts"] == 8
