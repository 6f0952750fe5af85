"""Fixtures shared by the tests that run real Airflow processes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from airflow_harness import AirflowHarness, EmulatorAdmin, shared_harness


@pytest.fixture(scope="session")
def e2e_lab(lab: Any) -> dict[str, Any]:
    """The lab's lab.json, as the Airflow harness takes it."""
    return dict(lab.raw)


@pytest.fixture(params=[pytest.param("3", id="af3"), pytest.param("2", id="af2")])
def airflow(
    request: pytest.FixtureRequest, e2e_lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> AirflowHarness:
    """One Airflow environment per version (3 and 2.11) for the whole session, migrated once."""
    harness = shared_harness(request.param, e2e_lab, tmp_path_factory.getbasetemp())
    if harness is None:
        pytest.fail(f"no Airflow {request.param} virtualenv (scripts/venvs.sh {request.param})", pytrace=False)
    return harness


@pytest.fixture
def ecr_admin(emulator: Any, e2e_lab: dict[str, Any]) -> Iterator[EmulatorAdmin]:
    """
    The emulator's admin API under ECR's 12 h token policy for the test (``emulator`` resets it
    after). Calls are told apart by each run's unique access key.
    """
    admin = EmulatorAdmin(e2e_lab["emulator_url"])
    with admin.ecr_policy([a["account_id"] for a in e2e_lab["accounts"]]):
        yield admin
