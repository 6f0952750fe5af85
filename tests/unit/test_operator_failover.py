"""
``fallback_regions`` in the Docker operator: the hook runs the image in its region, then in each
replica while a region fails; the operator keeps its own hook and fields. The docker provider's
``execute`` is replaced by a stand-in that fails for the regions told to fail; the client is real,
against a fake Engine API.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from airflow.providers.docker.operators.docker import DockerOperator

from airflow_ecr.exceptions import EcrImageNotFoundError, EcrRegistryUnavailableError
from airflow_ecr.registry import ImageReference
from helpers.fake_http import EngineAPI, serving

A = "111111111111"
MAIN = f"{A}.dkr.ecr.eu-west-1.amazonaws.com"
REPLICA = f"{A}.dkr.ecr.eu-central-1.amazonaws.com"
OTHER = f"{A}.dkr.ecr.us-east-1.amazonaws.com"


@pytest.fixture
def engine() -> Iterator[EngineAPI]:
    with serving(EngineAPI(), poll_interval=0.01) as server:
        yield server


def operator(engine: EngineAPI, regions: list[str] | None = None) -> Any:
    from airflow_ecr.operators.docker import EcrDockerOperator

    return EcrDockerOperator(
        task_id="t",
        image=f"{MAIN}/app:1",
        aws_conn_id=None,
        fallback_regions=["eu-central-1"] if regions is None else regions,
        docker_url=engine.url,
    )


def provider_execute(monkeypatch: pytest.MonkeyPatch, fails: dict[str, Exception]) -> list[tuple[str, str]]:
    """The docker provider's execute as a stand-in: (image, its client's region) of each run."""
    runs: list[tuple[str, str]] = []

    def execute(self: Any, context: Any) -> str:
        host = ImageReference.parse(self.image).host
        runs.append((self.image, host))
        assert self._ecr_given == f"{MAIN}/app:1"  # the operator's field is never rewritten
        if host in fails:
            raise fails[host]
        self.cli.create_container(self.image)  # on_run: the record
        return "ran"

    monkeypatch.setattr(DockerOperator, "execute", execute)
    return runs


def test_a_registry_outage_runs_the_image_from_its_replica(engine: EngineAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = provider_execute(monkeypatch, {MAIN: EcrRegistryUnavailableError("registry down")})
    op = operator(engine)
    hook = op.hook
    assert op.execute({}) == "ran"
    assert runs == [(f"{MAIN}/app:1", MAIN), (f"{REPLICA}/app:1", REPLICA)]
    assert op.image == f"{MAIN}/app:1"  # the field the DAG set
    assert op.hook is hook and [r.host for r in hook.registries] == [MAIN]  # never swapped for the replica's
    assert op._ecr_record.as_xcom() == {
        "image": f"{MAIN}/app:1",
        "registry": REPLICA,
        "repository": "app",
        "tag": "1",
        "digest": None,
        "reference": None,
        "region": "eu-central-1",
        "pulled": False,
        "platform": None,
        "platform_digest": None,
        "image_id": None,
        "pinned": False,
        "resolved_at": None,
        "requested": f"{MAIN}/app:1",
        "policy": None,
    }


def test_a_missing_image_in_the_main_region_never_falls_back(
    engine: EngineAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = provider_execute(monkeypatch, {MAIN: EcrImageNotFoundError("no such image")})
    with pytest.raises(EcrImageNotFoundError, match=r"^no such image$"):
        operator(engine).execute({})
    assert [host for _, host in runs] == [MAIN]


def test_a_replica_without_the_image_ends_naming_every_region(
    engine: EngineAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider_execute(monkeypatch, {MAIN: EcrRegistryUnavailableError("down"), REPLICA: EcrImageNotFoundError("gone")})
    with pytest.raises(EcrImageNotFoundError) as raised:
        operator(engine, ["eu-central-1", "us-east-1"]).execute({})
    assert str(raised.value) == (
        f"Image {MAIN}/app:1 could not be pulled from any region tried (eu-west-1: down; eu-central-1: gone)."
    )


def test_every_region_down_names_each(engine: EngineAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    down = {host: EcrRegistryUnavailableError(f"{host} down") for host in (MAIN, REPLICA, OTHER)}
    runs = provider_execute(monkeypatch, down)
    with pytest.raises(EcrRegistryUnavailableError) as raised:
        operator(engine, ["eu-central-1", "us-east-1"]).execute({})
    assert [host for _, host in runs] == [MAIN, REPLICA, OTHER]
    assert "(eu-west-1: " in str(raised.value) and "; us-east-1: " in str(raised.value)


def test_without_fallback_regions_the_outage_is_raised_as_it_is(
    engine: EngineAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider_execute(monkeypatch, {MAIN: EcrRegistryUnavailableError("down")})
    with pytest.raises(EcrRegistryUnavailableError, match=r"^down$"):
        operator(engine, []).execute({})
