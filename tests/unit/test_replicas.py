"""Replica registries for ``fallback_regions``: the same account's registry in another region. Pure."""

from __future__ import annotations

import json

import pytest

from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.hooks.docker import EcrDockerHook, classify_pull_error
from airflow_ecr.registry import declare_alias, fallback_registries, parse_registry_host

A = "111111111111"


@pytest.mark.parametrize(
    ("host", "region", "replica"),
    [
        (f"{A}.dkr.ecr.eu-west-1.amazonaws.com", "eu-central-1", f"{A}.dkr.ecr.eu-central-1.amazonaws.com"),
        (f"{A}.dkr.ecr-fips.us-east-1.amazonaws.com", "us-west-2", f"{A}.dkr.ecr-fips.us-west-2.amazonaws.com"),
        (f"{A}.dkr-ecr.eu-west-1.on.aws", "eu-north-1", f"{A}.dkr-ecr.eu-north-1.on.aws"),
        (f"{A}.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-northwest-1", f"{A}.dkr.ecr.cn-northwest-1.amazonaws.com.cn"),
    ],
)
def test_a_replica_keeps_the_hosts_shape_in_the_other_region(host: str, region: str, replica: str) -> None:
    (found,) = fallback_registries(parse_registry_host(host), [region])
    assert (found.host, found.region, found.account_id) == (replica, region, A)


def test_an_aliased_registry_falls_back_to_the_real_ecr_host_of_the_replica() -> None:
    alias = declare_alias("registry.example.com", A, "eu-west-1")
    (found,) = fallback_registries(alias, "eu-central-1")
    assert found.host == f"{A}.dkr.ecr.eu-central-1.amazonaws.com"


def test_regions_come_in_order_once_each_from_a_list_or_a_comma_separated_string() -> None:
    main = parse_registry_host(f"{A}.dkr.ecr.eu-west-1.amazonaws.com")
    assert [r.region for r in fallback_registries(main, " eu-central-1, us-east-1 ,eu-central-1")] == [
        "eu-central-1",
        "us-east-1",
    ]
    assert fallback_registries(main, None) == []


@pytest.mark.parametrize(
    ("regions", "says"),
    [
        (["eu-west-1"], "is the image's own region"),
        (["eu-west"], "'eu-west' is not an AWS region name"),
        (["us-gov-west-1"], "is in partition aws-us-gov, the image's registry in aws"),
        ([1], "fallback_regions must be a list of AWS region names"),
        ({"eu-central-1": 1}, "fallback_regions must be a list of AWS region names"),
    ],
)
def test_bad_fallback_regions_are_one_sentence_before_any_io(regions: object, says: str) -> None:
    with pytest.raises(EcrConfigurationError, match=says):
        EcrDockerHook(image=f"{A}.dkr.ecr.eu-west-1.amazonaws.com/app:1", fallback_regions=regions)  # type: ignore[arg-type]


def test_ecr_public_has_no_replicas() -> None:
    with pytest.raises(EcrConfigurationError, match="ECR Public has no regional replicas"):
        EcrDockerHook(image="public.ecr.aws/team/app:1", fallback_regions=["eu-west-1"])


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('Get "https://h/v2/": dial tcp 198.18.0.11:443: connect: connection refused', "unavailable"),
        ("received unexpected HTTP status: 503 Service Unavailable", "unavailable"),
        ("Get https://h/v2/: net/http: TLS handshake timeout", "unavailable"),
        ("no basic auth credentials", "auth"),
        # ECR's answer without ecr:BatchGetImage: a refusal, never an outage to fall back from.
        ("denied: User: arn:aws:iam::1:user/x is not authorized to perform: ecr:BatchGetImage", "auth"),
        ("manifest unknown: manifest unknown", "not_found"),
        ("toomanyrequests: Rate exceeded", "other"),
    ],
)
def test_a_registry_outage_reads_as_one_and_a_refusal_never_does(message: str, kind: str) -> None:
    assert classify_pull_error(message, "h/app:1") == kind


def _ecr_docker_connection(monkeypatch: pytest.MonkeyPatch, **extra: object) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ECR_X", json.dumps({"conn_type": "ecr_docker", "extra": extra}))


def test_an_ecr_docker_connection_names_the_fallback_regions_and_the_hook_wins(monkeypatch) -> None:
    image = f"{A}.dkr.ecr.eu-west-1.amazonaws.com/app:1"
    _ecr_docker_connection(monkeypatch, fallback_regions="eu-central-1, us-east-1")  # as the form stores it
    from_connection = EcrDockerHook(image=image, docker_conn_id="ecr_x")
    assert [r.region for r in from_connection.fallback_registries] == ["eu-central-1", "us-east-1"]
    mine = EcrDockerHook(image=image, docker_conn_id="ecr_x", fallback_regions=["us-west-2"])
    assert [r.region for r in mine.fallback_registries] == ["us-west-2"]
    replica = from_connection.in_registry(from_connection.fallback_registries[0])
    assert replica.registries[0].host == f"{A}.dkr.ecr.eu-central-1.amazonaws.com"


def test_a_bad_fallback_region_in_a_connection_is_one_sentence_before_any_token(monkeypatch) -> None:
    _ecr_docker_connection(monkeypatch, fallback_regions=["eu-west-1"])
    hook = EcrDockerHook(image=f"{A}.dkr.ecr.eu-west-1.amazonaws.com/app:1", docker_conn_id="ecr_x")
    with pytest.raises(EcrConfigurationError, match="is the image's own region"):
        hook.fallback_registries  # noqa: B018 (the property reads the connection)
