"""
Transparent mode through real Airflow: DAGs with no airflow-ecr code in them, whose unmodified
``DockerOperator``, ``@task.docker`` and ``DockerSwarmOperator`` tasks name an ECR registry in
``docker_conn_id``, pull from the lab's registries, with ``EcrDockerConnectionBackend`` configured
through the environment only (``AIRFLOW__SECRETS__BACKEND[_KWARGS]`` and, for Airflow 3's task
processes, ``AIRFLOW__WORKERS__SECRETS_BACKEND[_KWARGS]``). The backend's AWS identity comes from the
boto3 default chain (``AWS_ACCESS_KEY_ID`` in the environment), unique per run, so the emulator's
call list tells this run's calls apart.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount, EmulatorClient
from helpers.airflow_harness import AirflowHarness, RunResult, new_access_key, shared_harness
from helpers.lab_engine import remove_local_image

pytestmark = [pytest.mark.lab, pytest.mark.airflow_run, pytest.mark.timeout(420)]

BACKEND = "airflow_ecr.secrets.ecr.EcrDockerConnectionBackend"
OPS_DAG = "secrets_docker_ops"
ERRORS_DAG = "secrets_errors"
OPS_TASKS = [f"{kind}_{n}" for n in (1, 2) for kind in ("docker", "decorated", "swarm")]
SHORT_TTL = 5.0  # seconds: a run of six tasks spans several token lifetimes


def backend_env(emulator_url: str, access_key: str, secret_key: str, lab: dict[str, Any]) -> dict[str, str]:
    """The environment that turns the backend on, for the API server, scheduler and task processes."""
    kwargs = json.dumps(
        {
            "endpoint_url": emulator_url,
            "region_name": "eu-west-1",
            "connections": {"lab_registry": lab["accounts"][0]["host"]},
        }
    )
    return {
        "AIRFLOW__SECRETS__BACKEND": BACKEND,
        "AIRFLOW__SECRETS__BACKEND_KWARGS": kwargs,
        "AIRFLOW__WORKERS__SECRETS_BACKEND": BACKEND,
        "AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS": kwargs,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
    }


def harness(version: str, lab: dict[str, Any], factory: pytest.TempPathFactory) -> AirflowHarness:
    found = shared_harness(version, lab, factory.getbasetemp())
    if found is None:
        pytest.fail(f"no Airflow {version} virtualenv (scripts/venvs.sh {version})", pytrace=False)
    return found


class PasswordSampler(threading.Thread):
    """Collects the accounts' registry passwords while a run rotates them (for the leak check)."""

    def __init__(self, emulator: EmulatorClient, accounts: list[str], interval: float = 0.25) -> None:
        super().__init__(daemon=True, name="password-sampler")
        self.emulator, self.accounts, self.interval = emulator, accounts, interval
        self.passwords: set[str] = set()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            with contextlib.suppress(OSError):
                self.passwords |= {self.emulator.password(a) for a in self.accounts}
            self._done.wait(self.interval)

    def stop(self) -> set[str]:
        self._done.set()
        self.join(timeout=10)
        self.passwords |= {self.emulator.password(a) for a in self.accounts}
        return self.passwords


@contextlib.contextmanager
def short_tokens(emulator: EmulatorClient, accounts: list[str], ttl: float) -> Iterator[None]:
    """Tokens living ``ttl`` s for the block only (the lab is shared); the ``emulator`` fixture
    restores the policy too, should this process die first."""
    before = emulator.config()
    emulator.config(token_ttl=ttl, rotate_fraction=0.5)
    for account in accounts:
        emulator.revoke(account)  # no 12 h token left over: the first call mints a short one
    try:
        yield
    finally:
        emulator.config(**before)
        for account in accounts:
            emulator.revoke(account)


def assert_no_secret(result: RunResult, secret_values: set[str]) -> None:
    texts = {"output": result.output, **result.logs}
    leaks = [f"{where}:{n}" for where, text in texts.items() for n, line in enumerate(text.splitlines(), 1)
             if any(s in line for s in secret_values)]  # fmt: skip
    assert not leaks, f"a secret appears in {leaks}"


def check_ops_run(result: RunResult, airflow: AirflowHarness, run_id: str | None = None) -> None:
    text = result.all_text()
    for n in (1, 2):
        assert f"secrets-docker-{n}" in result.log_text(f"docker_{n}") or f"secrets-docker-{n}" in text
        assert f"secrets-swarm-{n}" in text, result.describe()
        assert airflow.xcom(OPS_DAG, f"decorated_{n}") == f"secrets-decorated-{n}-py311-True", result.describe()
    # DockerHook logged in with the connection the backend made, in the process that ran the task.
    assert "Login into Docker Registry: 111111111111.dkr.ecr.eu-west-1.amazonaws.com" in text, result.describe()
    # The backend's token came with its provenance line, naming the connection it resolved.
    assert "ECR login for 111111111111.dkr.ecr.eu-west-1.amazonaws.com (connection '" in text, result.describe()


@pytest.mark.parametrize("version", [pytest.param("3", id="af3"), pytest.param("2", id="af2")])
def test_scheduler_unmodified_operators_with_short_lived_tokens(
    version: str, e2e_lab: dict[str, Any], emulator: EmulatorClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """
    A real scheduler, each task its own process (Airflow 3: LocalExecutor; 2.11: the harness's
    SequentialExecutor, as Airflow 2 refuses the LocalExecutor on SQLite); tokens live 5 s.
    """
    airflow = harness(version, e2e_lab, tmp_path_factory)
    accounts = [a["account_id"] for a in e2e_lab["accounts"]]
    key, secret_key = new_access_key(), "e2e-secret-" + secrets.token_hex(12)
    remove_local_image(e2e_lab, f"{e2e_lab['accounts'][1]['host']}/lab/busybox:1")
    sampler = PasswordSampler(emulator, accounts)
    env = backend_env(e2e_lab["emulator_url"], key, secret_key, e2e_lab)
    with airflow.scheduler(extra_env=env) as session:
        session.wait_dag(OPS_DAG)
        with short_tokens(emulator, accounts, SHORT_TTL):
            sampler.start()
            try:
                run_id = session.trigger(OPS_DAG)
                result = session.wait_run(OPS_DAG, run_id, timeout=240)
                calls = emulator.calls(access_key=key)
            finally:
                passwords = sampler.stop()
        rows = airflow.query("SELECT task_id, state, pid FROM task_instance WHERE dag_id = ? AND run_id = ?",
                             OPS_DAG, run_id)  # fmt: skip

    assert result.state == "success", result.describe()
    assert {r["task_id"]: r["state"] for r in rows} == dict.fromkeys(OPS_TASKS, "success"), result.describe()
    assert len({r["pid"] for r in rows}) == len(OPS_TASKS), f"tasks shared a process: {rows}"
    check_ops_run(result, airflow, run_id)
    # Several token lifetimes, yet at most one GetAuthorizationToken per task (usually fewer).
    assert result.duration >= 2 * SHORT_TTL, f"the run took only {result.duration:.1f} s"
    assert all(c["outcome"] == "ok" for c in calls), calls
    assert 2 <= len(calls) <= len(OPS_TASKS), calls
    assert {tuple(c["registry_ids"]) for c in calls} == {(a,) for a in accounts}, calls
    assert_no_secret(result, passwords | {secret_key})
    print(
        f"\n[secrets backend, Airflow {airflow.version} scheduler] {len(OPS_TASKS)} tasks in "
        f"{result.duration:.1f} s with {SHORT_TTL:.0f} s tokens: {len(calls)} GetAuthorizationToken calls, "
        f"{len(passwords)} distinct registry passwords seen"
    )


def test_dags_test_af2_unmodified_operators_with_short_lived_tokens(
    e2e_lab: dict[str, Any], emulator: EmulatorClient, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Airflow 2.11, ``airflow dags test``: the same DAG, the same backend, the same short tokens."""
    airflow = harness("2", e2e_lab, tmp_path_factory)
    accounts = [a["account_id"] for a in e2e_lab["accounts"]]
    key, secret_key = new_access_key(), "e2e-secret-" + secrets.token_hex(12)
    remove_local_image(e2e_lab, f"{e2e_lab['accounts'][1]['host']}/lab/busybox:1")
    sampler = PasswordSampler(emulator, accounts)
    env = backend_env(e2e_lab["emulator_url"], key, secret_key, e2e_lab)
    with short_tokens(emulator, accounts, SHORT_TTL):
        sampler.start()
        try:
            result = airflow.dags_test(OPS_DAG, extra_env=env, timeout=200)
            calls = emulator.calls(access_key=key)
        finally:
            passwords = sampler.stop()

    assert result.rc == 0, result.describe()
    check_ops_run(result, airflow)
    assert all(c["outcome"] == "ok" for c in calls), calls
    assert 2 <= len(calls) <= len(OPS_TASKS), calls
    assert_no_secret(result, passwords | {secret_key})
    print(
        f"\n[secrets backend, Airflow {airflow.version} dags test] {len(OPS_TASKS)} tasks in "
        f"{result.duration:.1f} s with {SHORT_TTL:.0f} s tokens: {len(calls)} GetAuthorizationToken calls"
    )


@pytest.mark.parametrize("version", [pytest.param("3", id="af3"), pytest.param("2", id="af2")])
def test_bad_connection_ids_fail_their_task_with_one_clear_sentence(
    version: str, e2e_lab: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Malformed id, unknown region, AccessDenied: each task log names the conn id and the fix.

    A private emulator (denying the second account) keeps the shared lab emulator's faults off.
    """
    airflow = harness(version, e2e_lab, tmp_path_factory)
    account1, host2 = e2e_lab["accounts"][0]["account_id"], e2e_lab["accounts"][1]["host"]
    emulated = [EmulatedAccount(a["account_id"], a["region"]) for a in e2e_lab["accounts"]]
    key, secret_key = new_access_key(), "e2e-secret-" + secrets.token_hex(12)
    with EcrEmulator(emulated) as private:
        private.set_faults(deny=[e2e_lab["accounts"][1]["account_id"]])
        env = backend_env(private.url, key, secret_key, e2e_lab)
        result = airflow.dags_test(ERRORS_DAG, extra_env=env, timeout=150)
        calls, url = private.calls(), private.url

    text = result.all_text()
    expected = {
        "malformed": "Connection id 'ecr:not-a-registry.example.com' starts with 'ecr:', the airflow-ecr "
        "secrets backend's prefix, but 'not-a-registry.example.com' is not an Amazon ECR registry host: "
        "write it as 'ecr:<12-digit account id>.dkr.ecr.<region>.amazonaws.com'",
        "unknown_region": f"Connection 'ecr:{account1}.dkr.ecr.xx-nope-1.amazonaws.com' names registry "
        f"{account1}.dkr.ecr.xx-nope-1.amazonaws.com in region 'xx-nope-1', which is not a region where "
        "botocore knows ECR (partition 'aws'): fix the region in the registry host",
        "denied": f"Connection 'ecr:{host2}' got no ECR token: The AWS identity of the airflow-ecr secrets "
        f"backend (endpoint_url='{url}') is not allowed ecr:GetAuthorizationToken for registry {host2}",
    }
    for task_id, sentence in expected.items():
        assert sentence in text, f"{task_id}: {sentence!r} not in the output:\n{result.describe()}"
    assert "Login into Docker Registry" not in text  # no task got as far as a login
    # The malformed id made no call at all.
    assert sorted(c["outcome"] for c in calls) == ["AccessDeniedException", "InvalidParameterException"], calls
    assert_no_secret(result, {secret_key})
