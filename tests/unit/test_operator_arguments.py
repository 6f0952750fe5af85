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
        ({"image": "ghcr.io/org/app:1"}, r"nor on a declared alias: declare the alias in \[ecr\] registry_aliases"),
        (
            {"image": "attacker.example.com/x:1", "registry_id": "123456789012", "region_name": "eu-west-1"},
            "nor on a declared alias",
        ),
        ({"image": "12345.dkr.ecr.eu-west-1.amazonaws.com/app:1"}, "12-digit account id"),
        ({"image": "123456789012.dkr.ecr.westeurope.amazonaws.com/app:1"}, "malformed AWS region"),
        ({"image": IMAGE, "registry_id": "123456789012", "region_name": "eu-west"}, "not an AWS region"),
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


def test_an_alias_image_rendered_from_conf_is_refused_at_execute_before_any_token(monkeypatch):
    """Fails on the old operator: registry_id + region_name made the rendered host an alias."""
    from airflow_ecr.hooks.docker import EcrDockerHook

    monkeypatch.setattr(EcrDockerHook, "registry_auth", lambda *a, **k: pytest.fail("a token was asked for"))
    for operator in (EcrDockerOperator, EcrDockerSwarmOperator):
        op = operator(task_id="t", image="{{ params.image }}", registry_id="123456789012", region_name="eu-west-1",
                      docker_url="unix:///nonexistent.sock")  # fmt: skip
        op.image = "attacker.example.com/steal:1"  # what a run's conf rendered
        with pytest.raises(EcrConfigurationError, match=r"nor on a declared alias.*\[ecr\] registry_aliases"):
            op.execute({})


def test_the_decorated_task_refuses_an_undeclared_alias_as_the_operator_does():
    from airflow_ecr.decorators.docker import _EcrDockerDecoratedOperator

    with pytest.raises(EcrConfigurationError, match="nor on a declared alias"):
        _EcrDockerDecoratedOperator(task_id="t", python_callable=lambda: None, image="ghcr.io/org/app:1",
                                    registry_id="123456789012", region_name="eu-west-1")  # fmt: skip


def test_declared_aliases_pass_the_parse_time_check(monkeypatch):
    monkeypatch.setenv("AIRFLOW__ECR__REGISTRY_ALIASES", "registry.example.com=123456789012:eu-west-1")
    op = EcrDockerOperator(task_id="t", image="registry.example.com/app:1")
    assert [r.host for r in op.hook.registries] == ["registry.example.com"]
    # An ecr_docker connection may declare the alias: it is read at execute, not at parse time.
    EcrDockerSwarmOperator(task_id="t2", image="proxy.example.org/app:1", docker_conn_id="ecr_alias")
