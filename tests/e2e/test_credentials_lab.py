"""
Stored-connection mode with real parts: the community snippet (only the import changed) before an
unmodified ``DockerOperator(docker_conn_id="docker_ecr")`` pulling from the lab's ECR by its real
name, on Airflow 2.11 (``airflow dags test``, ORM) and 3.x (through a real ``airflow api-server``);
``airflow-ecr refresh-connection`` the same way; ``/proc/*/cmdline`` sampled every 50 ms during
both; bad input leaving the connection intact; and the concurrency of the upsert on a private
PostgreSQL cluster (Debian's package), next to a delete-then-add writer that makes readers fail.

Run: ``AIRFLOW_ECR_LAB_DIR=/tmp/airflow-ecr-lab pytest tests/e2e/test_credentials.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_ecr.testing import EmulatorClient
from airflow_ecr_lab.leaks import ProcessSampler
from helpers.airflow_harness import AirflowHarness, api_connection, api_server, find_venv, free_port, new_access_key
from helpers.services import postgres_cluster

pytestmark = [pytest.mark.lab, pytest.mark.airflow_run, pytest.mark.timeout(420)]

DAG_ID = "credentials_snippet"
CONN_ID = "docker_ecr"
API_CONN_ID = "airflow_api"


# -- helpers ----------------------------------------------------------------------------------
def stored(airflow: AirflowHarness, conn_id: str = CONN_ID) -> dict[str, Any] | None:
    """The connection's row in the harness's metadata database, its password decrypted with the
    deployment's Fernet key (Airflow encrypts it there, as in every deployment)."""
    query = "SELECT conn_type, host, login, password, is_encrypted FROM connection WHERE conn_id = ?"
    rows = airflow.query(query, conn_id)
    if not rows:
        return None
    row = dict(rows[0])
    assert row.pop("is_encrypted"), f"connection {conn_id!r} is stored unencrypted"
    row["password"] = Fernet(airflow.fernet_key.encode()).decrypt(row["password"].encode()).decode()
    return row


def assert_no_secret(texts: Mapping[str, str], secret: str) -> None:
    found = [
        f"{where}: {line.replace(secret, '<TOKEN>')[:300]}"
        for where, text in texts.items()
        for line in text.splitlines()
        if secret in line
    ]
    assert not found, "the ECR token appears in:\n" + "\n".join(found)


def run_refresh_cli(
    airflow: AirflowHarness, e2e_lab: dict[str, Any], extra: Mapping[str, str], *args: str
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``airflow-ecr refresh-connection ARGS`` from the harness's venv, AWS credentials in the env."""
    env = airflow.env(cache_dir=Path(tempfile.mkdtemp(dir=airflow.home)), extra=extra)
    # The standard boto3 way: environment variables (the emulator accepts any key).
    env.update({"AWS_ACCESS_KEY_ID": new_access_key(), "AWS_SECRET_ACCESS_KEY": "testing"})
    env["AWS_ENDPOINT_URL"] = e2e_lab["emulator_url"]
    started = time.monotonic()
    result = subprocess.run(
        [str(airflow.venv / "bin" / "airflow-ecr"), "refresh-connection", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result, time.monotonic() - started


# -- the scanner can fail -----------------------------------------------------------------------
def test_argv_scanner_sees_a_secret_on_a_command_line() -> None:
    """The control: a secret passed as an argument (as ``--conn-password TOKEN`` is) is caught."""
    marker = "visible-" + new_access_key()
    with ProcessSampler(environ=False) as scanner:
        subprocess.run(["/bin/sh", "-c", "sleep 0.3", "sh", marker], check=True)
    assert scanner.leaks({marker})


# -- the snippet, the CLI, bad input: Airflow 3 (REST API) and 2.11 (ORM) ------------------------
def test_snippet_and_cli_refresh_a_docker_connection(
    airflow: AirflowHarness, ecr_admin: EmulatorClient, e2e_lab: dict[str, Any], tmp_path: Path
) -> None:
    account = e2e_lab["accounts"][0]
    account_id, host = account["account_id"], account["host"]
    with api_server(airflow) as (port, api_env):
        api_args = ["--api-conn-id", API_CONN_ID] if port else []

        # 1. The CLI (re)writes the connection with a fresh token; the token is never in argv.
        ecr_admin.revoke(account_id)
        token = ecr_admin.password(account_id)
        with ProcessSampler(environ=False) as scanner:
            result, cli_seconds = run_refresh_cli(
                airflow, e2e_lab, api_env, "--conn-id", CONN_ID, "--registry", host, *api_args
            )
        assert result.returncode == 0, result.stderr
        assert result.stderr == "" and result.stdout.count("\n") == 1, result.stdout + result.stderr
        assert result.stdout.startswith(f"airflow-ecr: wrote docker connection '{CONN_ID}' for {host}")
        assert stored(airflow) == {"conn_type": "docker", "host": host, "login": "AWS", "password": token}
        assert scanner.samples > 10 and scanner.leaks({token}) == [], scanner.leaks({token})

        # 2. The token is revoked, so the stored connection is stale: the snippet's register task
        #    must replace it before the unmodified DockerOperator logs in, pulls and runs.
        ecr_admin.revoke(account_id)
        token = ecr_admin.password(account_id)
        env = {"AIRFLOW_CONN_AWS_DEFAULT": airflow.aws_connection(new_access_key()), **api_env}
        with ProcessSampler(environ=False) as scanner:
            run = airflow.dags_test(DAG_ID, extra_env=env, cache_dir=tmp_path / "cache-dag")
        assert run.rc == 0, run.describe()
        dag_seconds = run.duration
        assert "hello-from-stored-connection" in run.all_text(), run.describe()
        assert "Marking task as FAILED" not in run.all_text(), run.describe()
        assert stored(airflow) == {"conn_type": "docker", "host": host, "login": "AWS", "password": token}
        assert scanner.leaks({token}) == [], scanner.leaks({token})
        assert_no_secret({"dags test output": run.all_text()}, token)
        xcom = airflow.xcom(DAG_ID, "refresh_ecr")
        assert xcom and xcom[0]["conn_id"] == CONN_ID and xcom[0]["host"] == host, xcom
        assert token not in json.dumps(xcom)
        if port:
            assert f"to the Airflow REST API at http://127.0.0.1:{port}" in run.all_text()

        # The refresh-DAG factory writes its own connection the same way.
        factory = airflow.dags_test("credentials_refresh_factory", extra_env=env, cache_dir=tmp_path / "cache-f")
        assert factory.rc == 0, factory.describe()
        assert stored(airflow, "docker_ecr_factory") == {
            "conn_type": "docker",
            "host": host,
            "login": "AWS",
            "password": token,
        }, factory.describe()

        # 3. Bad input: each fails with a clear one-line error, and the connection is left intact.
        good = stored(airflow)
        cases: list[tuple[list[str], dict[str, str], int, list[str]]] = [
            (["--registry-id", "12345", "--region", "eu-west-1"], {}, 2, ["'12345' is not a 12-digit"]),
            (["--registry-id", account_id, "--region", "moon-1"], {}, 2, ["'moon-1' is not an AWS region"]),
            (
                ["--registry-id", account_id, "--region", "ap-northeast-1"],
                {},
                3,
                ["not emulated in region ap-northeast-1"],
            ),
        ]
        if port:
            dead = free_port()
            cases += [
                ([], {"AIRFLOW_CONN_AIRFLOW_API": api_connection(port, "wrong-password")}, 5,
                 [f"http://127.0.0.1:{port}", f"'{API_CONN_ID}'", "refused the credentials"]),
                ([], {"AIRFLOW_CONN_AIRFLOW_API": api_connection(dead, "x")}, 5,
                 [f"Cannot reach the Airflow REST API at http://127.0.0.1:{dead}", f"'{API_CONN_ID}'"]),
            ]  # fmt: skip
        else:
            dead_db = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/airflow"
            db_down = [f"Cannot write connection '{CONN_ID}' to the Airflow metadata database", "sql_alchemy_conn"]
            cases.append(([], {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": dead_db}, 5, db_down))
        for args, override, code, needles in cases:
            registry = args or ["--registry", host]
            result, _ = run_refresh_cli(
                airflow, e2e_lab, {**api_env, **override}, "--conn-id", CONN_ID, *registry, *api_args
            )
            assert result.returncode == code, (args, result.stdout, result.stderr)
            assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
            for needle in needles:
                assert needle in result.stderr, (needle, result.stderr)
            assert stored(airflow) == good
            assert token not in result.stderr
        ecr_admin.faults(deny=True)
        try:
            result, _ = run_refresh_cli(airflow, e2e_lab, api_env, "--conn-id", CONN_ID, "--registry", host, *api_args)
            assert result.returncode == 3 and "ecr:GetAuthorizationToken" in result.stderr, result.stderr
            assert stored(airflow) == good
            if port:
                # The operator itself with AccessDenied: the task fails, the connection stays.
                run = airflow.dags_test(DAG_ID, extra_env=env, cache_dir=tmp_path / "cache-denied")
                assert "is not allowed ecr:GetAuthorizationToken" in run.all_text(), run.describe()
                assert "hello-from-stored-connection" not in run.all_text()
                assert stored(airflow) == good
        finally:
            ecr_admin.faults(deny=False)
        if port:
            # The operator with the API refusing its credentials: a clear error naming URL and id.
            refused = {**env, "AIRFLOW_CONN_AIRFLOW_API": api_connection(port, "wrong-password")}
            run = airflow.dags_test(DAG_ID, extra_env=refused, cache_dir=tmp_path / "cache-refused")
            text = run.all_text()
            assert (
                f"The Airflow REST API at http://127.0.0.1:{port} refused the credentials of connection '{API_CONN_ID}'"
                in text
            ), run.describe()
            assert stored(airflow) == good
    print(f"\nAirflow {airflow.version}: CLI refresh {cli_seconds:.1f} s, snippet DAG {dag_seconds:.1f} s")


# -- concurrency on PostgreSQL ------------------------------------------------------------------
RACE_SCRIPT = textwrap.dedent(
    '''
    """Readers and writers of one connection, on the metadata database of the environment."""
    import json, os, sys, threading, time
    from pathlib import Path

    from airflow import settings
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    from airflow_ecr.connections import OrmConnectionWriter

    CONN_ID = "docker_race"


    def version(n):
        # Host and password carry the same number: a reader seeing them differ saw a half write.
        return {"host": f"{n:012d}.dkr.ecr.eu-west-1.amazonaws.com", "login": "AWS",
                "password": f"token-{n:012d}-" + "x" * 2000}


    def setup():
        Connection.__table__.create(settings.engine, checkfirst=True)
        OrmConnectionWriter().upsert(CONN_ID, **version(0))


    def read_loop(stop, ready, stats, lock):
        first = True
        while not stop.exists():
            try:
                conn = Connection.get_connection_from_secrets(CONN_ID)
            except Exception as err:
                outcome = "missing" if "isn't defined" in str(err) else "error:" + type(err).__name__
            else:
                n = int(conn.host.split(".")[0])
                ok = conn.conn_type == "docker" and conn.login == "AWS" and conn.password == version(n)["password"]
                outcome = "ok" if ok else "inconsistent"
                with lock:
                    stats["versions"].add(n)
            with lock:
                stats[outcome] = stats.get(outcome, 0) + 1
            if first:
                first = False
                ready.wait()


    def readers(threads, stop_file, ready_file):
        # Niced: 20 busy readers must not starve the writer of CPU on a small host.
        os.nice(10)
        stop, lock = Path(stop_file), threading.Lock()
        stats = {"versions": set()}
        barrier = threading.Barrier(threads + 1)
        workers = [threading.Thread(target=read_loop, args=(stop, barrier, stats, lock)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        barrier.wait()  # every reader has read once: the writer may start
        Path(ready_file).touch()
        for worker in workers:
            worker.join()
        stats["versions"] = sorted(stats["versions"])
        print(json.dumps(stats))


    def write(mode, count, pause, go_file):
        while not Path(go_file).exists():  # imported and connected before the clock starts
            time.sleep(0.01)
        started = time.monotonic()
        for n in range(1, count + 1):
            if mode == "upsert":
                OrmConnectionWriter().upsert(CONN_ID, **version(n))
            else:
                # What `airflow connections delete` then `airflow connections add` do: two
                # transactions (here without the 3-4 s CLI start-up between them).
                with create_session() as session:
                    session.query(Connection).filter(Connection.conn_id == CONN_ID).delete()
                with create_session() as session:
                    session.add(Connection(conn_id=CONN_ID, conn_type="docker", **version(n)))
            time.sleep(pause)
        print(json.dumps({"seconds": time.monotonic() - started}))


    if __name__ == "__main__":
        if sys.argv[1] == "setup":
            setup()
        elif sys.argv[1] == "readers":
            readers(int(sys.argv[2]), sys.argv[3], sys.argv[4])
        else:
            write(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    '''
)


# One key for the module's database: passwords are stored encrypted, as in production.
FERNET_KEY = base64.urlsafe_b64encode(os.urandom(32)).decode()


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """A private PostgreSQL cluster (Debian's package) on 127.0.0.1, run as ``postgres``; its URL."""
    with postgres_cluster() as url:
        yield url


def race(
    postgres_url: str, tmp_path: Path, mode: str, readers: int = 20, processes: int = 2, writes: int = 20
) -> dict[str, Any]:
    """Start ``readers`` (threads over ``processes``), rewrite the connection ``writes`` times."""
    venv = find_venv("2") or find_venv("3")
    python = str(venv / "bin" / "python") if venv else sys.executable
    script = tmp_path / "race.py"
    script.write_text(RACE_SCRIPT)
    home = tmp_path / f"home-{mode}"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__", "PYTEST_"))} | {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "10",
        "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
    }
    setup = subprocess.run(
        [python, str(script), "setup"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert setup.returncode == 0, setup.stdout + setup.stderr
    stop, go = tmp_path / f"stop-{mode}", tmp_path / f"go-{mode}"
    writer = subprocess.Popen(
        [python, str(script), "write", mode, str(writes), "0.05", str(go)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs = []
    for i in range(processes):
        ready = tmp_path / f"ready-{mode}-{i}"
        args = [python, str(script), "readers", str(readers // processes), str(stop), str(ready)]
        procs.append(
            (subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), ready)
        )
    try:
        deadline = time.monotonic() + 120
        while not all(ready.exists() for _, ready in procs):
            assert all(p.poll() is None for p, _ in procs), [p.communicate() for p, _ in procs]
            assert time.monotonic() < deadline, "the readers did not start"
            time.sleep(0.1)
        go.touch()
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, out + err
        print(f"\n{mode}: {writes} rewrites in {json.loads(out)['seconds']:.2f} s")
        time.sleep(0.2)  # readers see the last version too
    finally:
        stop.touch()
        go.touch()
        with contextlib.suppress(subprocess.TimeoutExpired):
            writer.wait(timeout=30)
    totals: dict[str, Any] = {"versions": set()}
    for proc, _ in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        stats = json.loads(out.strip().splitlines()[-1])
        totals["versions"].update(stats.pop("versions"))
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value
    return totals


def test_upsert_never_shows_readers_a_missing_or_half_written_connection(postgres: str, tmp_path: Path) -> None:
    stats = race(postgres, tmp_path, "upsert")
    print(f"\nupsert: {stats['ok']} reads, versions seen {len(stats['versions'])}, {stats}")
    assert set(stats) == {"ok", "versions"}, stats  # no missing, inconsistent or error outcome
    assert stats["ok"] > 500
    # The readers really overlapped the rewrites: they saw the versions change.
    assert len(stats["versions"]) > 5 and max(stats["versions"]) == 20


def test_delete_then_add_makes_readers_fail(postgres: str, tmp_path: Path) -> None:
    """The same readers against the community writer: the test above can fail."""
    stats = race(postgres, tmp_path, "delete_add")
    print(f"\ndelete then add: {stats}")
    assert stats.get("missing", 0) > 0, stats
