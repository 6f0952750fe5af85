"""Operator arguments: clear AirflowException subclasses at DAG parse time, templating, laziness."""

from __future__ import annotations

import pytest

from airflow_ecr._compat import AirflowException
from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.operators.docker import EcrDockerOperator, EcrDockerSwarmOperator

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/ml/train:2.4"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": "ubuntu:22.04"}, "Docker Hub"),
        ({"image": "ghcr.io/org/app:1"}, "pass registry_id and region_name"),
        ({"image": "12345.dkr.ecr.eu-west-1.amazonaws.com/app:1"}, "12-digit account id"),
        ({"image": "123456789012.dkr.ecr.westeurope.amazonaws.com/app:1"}, "malformed AWS region"),
        (
            {"image": "ecr.example.com/app:1", "registry_id": "123456789012", "region_name": "eu-west"},
            "not an AWS region",
        ),
        ({"image": IMAGE, "registry_ids": "210987654321"}, "must be a list"),
        ({"image": IMAGE, "registry_ids": [210987654321]}, "must be a list"),
        ({"image": IMAGE, "registry_ids": ["2109"]}, "12-digit"),
        ({"image": f"{IMAGE} "}, "whitespace"),
    ],
)
@pytest.mark.parametrize("operator", [EcrDockerOperator, EcrDockerSwarmOperator])
def test_bad_arguments_fail_at_parse_time_with_one_sentence(operator, kwargs, message):
    with pytest.raises(EcrConfigurationError, match=message) as err:
        operator(task_id="t", **kwargs)
    assert isinstance(err.value, AirflowException)
    assert "Traceback" not in str(err.value)


def test_templated_arguments_are_checked_after_rendering_not_before():
    op = EcrDockerOperator(task_id="t", image="{{ var.value.image }}", registry_ids=["{{ var.value.other }}"])
    assert set(EcrDockerOperator.template_fields) >= {
        "image",
        "aws_conn_id",
        "region_name",
        "registry_id",
        "registry_ids",
    }
    op.image = "ubuntu:22.04"  # what rendering produced
    with pytest.raises(EcrConfigurationError, match="Docker Hub"):
        op.execute({})


def test_constructing_the_operator_and_hook_does_no_io():
    op = EcrDockerOperator(task_id="t", image=IMAGE, docker_url="unix:///nonexistent.sock")
    hook = op.hook  # building the hook connects nowhere and fetches nothing
    assert [r.host for r in hook.registries] == ["123456789012.dkr.ecr.eu-west-1.amazonaws.com"]
