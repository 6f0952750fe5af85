"""EcrKubernetesPodOperator's arguments, checked when the DAG is parsed (no cluster, no AWS)."""

from __future__ import annotations

import pytest

from airflow_ecr.exceptions import EcrConfigurationError
from airflow_ecr.operators.kubernetes import EcrKubernetesPodOperator

IMAGE = "111111111111.dkr.ecr.eu-west-1.amazonaws.com/app/hello:1"


def test_a_bad_fallback_region_fails_at_parse_time_in_one_sentence() -> None:
    with pytest.raises(EcrConfigurationError) as err:
        EcrKubernetesPodOperator(task_id="t", image=IMAGE, fallback_regions=[12])
    assert str(err.value) == "fallback_regions must be a list of AWS region names, got [12]."


def test_templated_fallback_regions_wait_for_the_task() -> None:
    operator = EcrKubernetesPodOperator(task_id="t", image=IMAGE, fallback_regions="{{ var.value.regions }}")
    assert "fallback_regions" in operator.template_fields and "pinned_images" in operator.template_fields


def test_an_image_off_ecr_is_left_alone_whatever_the_regions() -> None:
    EcrKubernetesPodOperator(task_id="t", image="busybox:1.36", fallback_regions=["eu-central-1"])
