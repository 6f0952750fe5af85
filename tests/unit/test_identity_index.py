"""
The identity index (tokens/cache.py) never lends one identity's token to another (issue 22, defect 1).

A warm lookup finds the identity behind a connection id through the index, keyed by the source's
``locator``, without reading the connection. These tests give two task processes the same conn id
whose connections differ only in ``role_arn`` (the connection comes from the metadata database, the
Execution API or a secrets backend: not from the process's environment), each with its own
``TokenCache`` on one host directory, and check that the second never gets the first one's token
where the two are different teams, deployments or connection origins; and that ``[ecr]
identity_recheck`` bounds how long a repointed connection may still be served its old token.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_ecr import _compat, process_state
from airflow_ecr.registry import EcrRegistry, parse_registry_host
from airflow_ecr.settings import EcrSettings
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.sources import EcrTokenSource
from airflow_ecr.tokens.token import EcrToken
from helpers.isolation import isolate_from_host

REG = parse_registry_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com")
ROLE_A = "arn:aws:iam::111111111111:role/team-a-admin"
ROLE_B = "arn:aws:iam::111111111111:role/team-b-reader"


class StoredConnectionSource(EcrTokenSource):
    """
    A real connection source whose AWS connection is not in the environment (the metadata database,
    the Execution API or a secrets backend answers for it), and whose ECR call is replaced: the
    token names the role that minted it.
    """

    fetches: list[str]

    def __init__(self, role_arn: str, aws_conn_id: str = "aws_default") -> None:
        super().__init__(aws_conn_id=aws_conn_id)
        self.role_arn = role_arn
        self.fetches = []

    def connection(self) -> Any:
        return SimpleNamespace(
            conn_type="aws", host=None, login=None, schema=None, extra_dejson={"role_arn": self.role_arn}
        )

    def fetch(self, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        self.fetches.append(self.role_arn)
        now = time.time()
        password = f"TOKEN-MINTED-BY-{self.role_arn}"
        return {r.registry_id: EcrToken("AWS", password, f"https://{r.host}", now + 12 * 3600, now) for r in registries}


@pytest.fixture
def host_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> EcrSettings:
    """One host cache directory; no AWS identity, team or deployment settings from the machine."""
    isolate_from_host(
        monkeypatch, tmp_path, "AIRFLOW_CONN_", "AIRFLOW_CTX_", "AIRFLOW__SECRETS__", "AIRFLOW__WORKERS__"
    )
    for name in ("AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "AIRFLOW__API__BASE_URL", "_AIRFLOW_PROCESS_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    return EcrSettings(cache_dir=tmp_path / "host-cache")


def task_process(settings: EcrSettings, role_arn: str) -> tuple[str, list[str]]:
    """One new task process's lookup: the token it got, and the roles it fetched with."""
    process_state.reset()
    source = StoredConnectionSource(role_arn)
    token = TokenCache(settings).get_one(source, REG)
    return token.password, source.fetches


def test_a_team_never_gets_another_teams_token_through_the_index(
    host_cache: EcrSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow 3.3 multi-team: the same conn id is another connection per team (the task runner exports the team)."""
    monkeypatch.setenv("AIRFLOW_CTX_TEAM_NAME", "team_a")
    assert task_process(host_cache, ROLE_A) == (f"TOKEN-MINTED-BY-{ROLE_A}", [ROLE_A])
    monkeypatch.setenv("AIRFLOW_CTX_TEAM_NAME", "team_b")
    got, fetches = task_process(host_cache, ROLE_B)
    assert got == f"TOKEN-MINTED-BY-{ROLE_B}", f"team B task got: {got} | B fetches: {len(fetches)}"


def test_a_team_scoped_environment_connection_counts_in_the_locator(
    host_cache: EcrSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CTX_TEAM_NAME", "team_a")
    monkeypatch.setenv("AIRFLOW_CONN__TEAM_A___AWS_DEFAULT", '{"conn_type": "aws", "extra": {"role_arn": "arn:one"}}')
    first = EcrTokenSource.from_connection().locator
    monkeypatch.setenv("AIRFLOW_CONN__TEAM_A___AWS_DEFAULT", '{"conn_type": "aws", "extra": {"role_arn": "arn:two"}}')
    assert EcrTokenSource.from_connection().locator != first


@pytest.mark.parametrize(
    ("variable", "deployment_a", "deployment_b"),
    [
        # Airflow 3: the Execution API server the worker's tasks talk to.
        (
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "http://airflow-a:8080/execution/",
            "http://airflow-b:8080/execution/",
        ),
        ("AIRFLOW__API__BASE_URL", "http://airflow-a:8080/", "http://airflow-b:8080/"),
        # Where the connection comes from: another secrets backend, or the same one pointed elsewhere.
        ("AIRFLOW__SECRETS__BACKEND", "", "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"),
        ("AIRFLOW__SECRETS__BACKEND_KWARGS", '{"connections_prefix": "a"}', '{"connections_prefix": "b"}'),
        ("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS", '{"connections_prefix": "a"}', '{"connections_prefix": "b"}'),
    ],
)
def test_two_deployments_or_origins_on_one_host_never_share_a_token(
    host_cache: EcrSettings, monkeypatch: pytest.MonkeyPatch, variable: str, deployment_a: str, deployment_b: str
) -> None:
    """Two Airflow deployments run by one OS user on one host (or one with another secrets backend)."""
    monkeypatch.setenv(variable, deployment_a)
    assert task_process(host_cache, ROLE_A)[0] == f"TOKEN-MINTED-BY-{ROLE_A}"
    monkeypatch.setenv(variable, deployment_b)
    got, fetches = task_process(host_cache, ROLE_B)
    assert got == f"TOKEN-MINTED-BY-{ROLE_B}", f"deployment B task got: {got} | B fetches: {len(fetches)}"


def test_the_metadata_database_counts_as_airflow_resolved_it(
    host_cache: EcrSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Airflow 2 tasks read connections from the metadata database: airflow.settings has its URL from any form."""
    import airflow.settings

    monkeypatch.setattr(airflow.settings, "SQL_ALCHEMY_CONN", "postgresql://airflow:pw@db-a/airflow", raising=False)
    first = EcrTokenSource.from_connection().locator
    monkeypatch.setattr(airflow.settings, "SQL_ALCHEMY_CONN", "postgresql://airflow:other-pw@db-a/airflow")
    assert EcrTokenSource.from_connection().locator == first  # a password rotation is the same deployment
    monkeypatch.setattr(airflow.settings, "SQL_ALCHEMY_CONN", "postgresql://airflow:pw@db-b/airflow")
    assert EcrTokenSource.from_connection().locator != first


def test_the_configuration_file_counts(host_cache: EcrSettings) -> None:
    """``[core] execution_api_server_url`` in airflow.cfg, not only in the environment."""
    conf = _compat.conf
    had_section = conf.has_section("core")
    had = had_section and conf.has_option("core", "execution_api_server_url")
    if had:
        pytest.skip("this test's airflow.cfg already sets [core] execution_api_server_url")
    before = EcrTokenSource.from_connection().locator
    try:
        if not had_section:
            conf.add_section("core")
        conf.set("core", "execution_api_server_url", "http://airflow-elsewhere:8080/execution/")
        assert EcrTokenSource.from_connection().locator != before
    finally:
        conf.remove_option("core", "execution_api_server_url")
        if not had_section:
            conf.remove_section("core")
    assert EcrTokenSource.from_connection().locator == before


def test_the_deployment_facts_hold_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    import airflow.settings

    monkeypatch.setattr(
        airflow.settings, "SQL_ALCHEMY_CONN", "postgresql://airflow:hunter2-db@db-a:5432/airflow?sslkey=k"
    )
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", '{"role_arn": "a", "secret_key": "hunter3-kwargs"}')
    facts = repr(_compat.deployment_facts())
    assert "hunter2-db" not in facts and "hunter3-kwargs" not in facts and "airflow@db-a:5432/airflow" in facts


def test_a_repointed_connection_is_read_again_after_identity_recheck(
    host_cache: EcrSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    An admin repoints ``aws_default`` away from a compromised role: within ``[ecr] identity_recheck``
    a warm lookup may still serve the old role's token (what docs/security.md promises, no more);
    after it, the connection is read again and the new role's token is fetched.
    """
    monkeypatch.setenv("AIRFLOW__ECR__IDENTITY_RECHECK", "60")
    assert task_process(host_cache, ROLE_A)[0] == f"TOKEN-MINTED-BY-{ROLE_A}"
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 30)
    assert task_process(host_cache, ROLE_B)[0] == f"TOKEN-MINTED-BY-{ROLE_A}"  # within the window
    monkeypatch.setattr(time, "time", lambda: real_time() + 61)
    assert task_process(host_cache, ROLE_B) == (f"TOKEN-MINTED-BY-{ROLE_B}", [ROLE_B])


def test_identity_recheck_zero_reads_the_connection_every_time(
    host_cache: EcrSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__IDENTITY_RECHECK", "0")
    assert task_process(host_cache, ROLE_A)[0] == f"TOKEN-MINTED-BY-{ROLE_A}"
    assert task_process(host_cache, ROLE_B) == (f"TOKEN-MINTED-BY-{ROLE_B}", [ROLE_B])
    assert host_cache.cache_dir is not None and not list(host_cache.cache_dir.glob("*.identity"))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-5", "[ecr] identity_recheck must be between 0 and 86400 seconds, got -5: set e.g. 900."),
        ("soon", "[ecr] identity_recheck must be a number, got 'soon': set e.g. 900."),
    ],
)
def test_a_bad_identity_recheck_is_one_sentence(
    host_cache: EcrSettings, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    from airflow_ecr.exceptions import EcrConfigurationError

    monkeypatch.setenv("AIRFLOW__ECR__IDENTITY_RECHECK", value)
    with pytest.raises(EcrConfigurationError) as raised:
        task_process(host_cache, ROLE_A)
    assert str(raised.value) == message
