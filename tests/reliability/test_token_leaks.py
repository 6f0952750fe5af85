"""
No token anywhere it should not be, with real Airflow 3 running DAGs (``airflow dags test``): while
each DAG runs, every process's command line and environment is sampled; afterwards the output and
task logs (exception texts included), every table of the metadata database (XCom, rendered template
fields, ...), every file of AIRFLOW_HOME, the cache directory and the lab's own files are scanned for
every registry password the emulator handed out during the run, in every form it travels in (ECR's
base64 ``authorizationToken``, URL-encoded, docker-py's ``X-Registry-Auth``).

The DAG runs at ``logging_level = DEBUG``: the output holds the task's, its supervisor's and every
library's debug lines (botocore's response bodies among them). The token may be in one place only:
the 0600 host cache file; with the file cache off, nowhere. Airflow's own leak (its supervisor's
MaskSecret debug lines) is kept apart and reported by a test of its own. A DAG that leaks on
purpose shows that the scan finds what it looks for.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import pytest

from airflow_ecr_lab.leaks import ProcessSampler, ecr_secret_forms, scan_files, scan_sqlite, scan_texts
from helpers.reliability_support import ScannedRun, is_private_cache_file, reliability_harness, run_scanned

pytestmark = [pytest.mark.lab, pytest.mark.airflow_run, pytest.mark.timeout(400)]


@pytest.fixture
def harness(lab, tmp_path_factory):
    return reliability_harness(lab, tmp_path_factory.getbasetemp())


@pytest.fixture
def fresh_tokens(lab, ecr_admin):
    """Tokens minted for this test only, and dead after it (revoked both ways)."""
    for account in lab.accounts:
        ecr_admin.revoke(account["account_id"])
    yield ecr_admin
    for account in lab.accounts:
        ecr_admin.revoke(account["account_id"])


def test_planted_leaks_are_found(harness, fresh_tokens, lab, tmp_path):
    run = run_scanned(harness, fresh_tokens, lab, "reliability_leak_planted", cache_dir=tmp_path / "cache")
    assert run.result.rc == 0, run.result.describe()
    found = "\n".join(map(str, run.leaks))
    assert any(leak.where.endswith(" cmdline") and "sleep 1 sh <SECRET>" in leak.excerpt for leak in run.leaks), found
    assert any(leak.where.startswith("table xcom ") for leak in run.leaks), found
    assert any(leak.where.startswith(f"file {harness.home}/planted-leak.txt") for leak in run.leaks), found
    # And the excerpts never show the secret itself.
    assert not any(secret in found for secret in run.secrets)
    (harness.home / "planted-leak.txt").unlink()


_DEBUG_RUNS: dict[str, tuple[ScannedRun, object]] = {}


@pytest.fixture
def debug_run(harness, fresh_tokens, lab, tmp_path_factory):
    """``reliability_secrets`` at DEBUG, scanned: run once, for the tests that read it (and its cache dir)."""
    if "run" not in _DEBUG_RUNS:
        cache_dir = tmp_path_factory.mktemp("debug-run") / "cache"
        run = run_scanned(harness, fresh_tokens, lab, "reliability_secrets", cache_dir=cache_dir, debug=True)
        _DEBUG_RUNS["run"] = (run, cache_dir)
    return _DEBUG_RUNS["run"]


def test_token_is_only_in_the_private_cache_file(harness, debug_run, lab):
    run, cache_dir = debug_run
    result = run.result
    states = dict(
        harness.query(
            "SELECT task_id, state FROM task_instance WHERE dag_id = ? AND run_id = "
            "(SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            "reliability_secrets",
            "reliability_secrets",
        )
    )
    assert states == {
        "templated": "success",
        "second_region": "success",
        "returns_xcom": "success",
        "missing_tag": "failed",
    }, result.describe()
    assert "lab/busybox:no-such-tag was not found in" in result.all_text()  # an exception text, scanned
    # The scanned places did hold what a leak would hide in.
    assert harness.xcom("reliability_secrets", "returns_xcom") == 42
    rendered = harness.query(
        "SELECT rendered_fields FROM rendered_task_instance_fields WHERE dag_id = ? AND task_id = ?",
        "reliability_secrets",
        "templated",
    )
    assert rendered and f"templated-{lab.accounts[0]['host']}" in str(rendered[-1][0])
    # It ran at DEBUG: botocore's debug lines of the token call are in the scanned output.
    assert "botocore.endpoint" in result.output and "GetAuthorizationToken" in result.output, result.describe()
    assert run.samples >= 20 and len(run.passwords) == 2  # two accounts
    # Every task (the operators and @task.ecr_docker) logs where its token came from, at INFO: the
    # first of each registry fetched now, the others from memory or the host cache (the scan covers the lines).
    provenance = [line for line in result.all_text().splitlines() if "ECR login for " in line]
    for host in (account["host"] for account in lab.accounts[:2]):
        assert any(f"ECR login for {host}: token from ECR (fetched now)" in line for line in provenance), provenance
    assert len(provenance) >= 4 and all(" valid until " in line and " identity " in line for line in provenance)
    # The token is in the two cache entries (one per registry), 0600, and nowhere else.
    in_cache = [leak for leak in run.leaks if is_private_cache_file(cache_dir)(leak)]
    assert len({leak.where for leak in in_cache}) == 2, run.leaks
    assert run.leaks_outside(is_private_cache_file(cache_dir)) == []


@pytest.mark.xfail(
    strict=True,
    reason="Airflow's own leak: at DEBUG its in-process supervisor (airflow dags test, supervisor.py "
    "'Sending request') logs each MaskSecret message with the value in it, past the masker; its logger "
    "has no name, so [logging] namespace_levels cannot quiet it. Workaround (docs/security.md): no "
    "logging_level = DEBUG where task logs or dags-test output are readable by others",
)
def test_airflow_itself_logs_no_mask_secret_value_at_debug(debug_run):
    """Kept in sight, not hidden: when an Airflow release stops this leak, this test XPASSes (fails)."""
    run, _ = debug_run
    assert run.airflow_leaks == [], "\n".join(map(str, run.airflow_leaks))


def test_with_the_file_cache_off_the_token_is_nowhere(harness, fresh_tokens, lab, tmp_path):
    cache_dir = tmp_path / "cache"
    run = run_scanned(
        harness,
        fresh_tokens,
        lab,
        "reliability_secrets",
        cache_dir=cache_dir,
        extra_env={"AIRFLOW__ECR__CACHE_ENABLED": "False"},
        debug=True,
    )
    assert "templated-" in run.result.all_text(), run.result.describe()
    assert run.samples >= 20 and run.secrets
    assert [str(leak) for leak in run.leaks] == []
    assert not cache_dir.exists()


# -- the scanner itself, without Airflow -------------------------------------------------------------
def test_scanner_finds_each_kind_of_leak(tmp_path):
    secret = "s3cr3t-" + base64.b32encode(bytes(range(10))).decode()
    forms = ecr_secret_forms([secret])
    with ProcessSampler(interval=0.02) as sampler:
        subprocess.run(["/bin/sh", "-c", "sleep 0.3", "sh", secret], check=True)
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.3)"], env={"X": secret}, check=True)
    (tmp_path / "f.txt").write_text(f"header {base64.b64encode(f'AWS:{secret}'.encode()).decode()} trailer")
    import sqlite3

    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        db.execute("CREATE TABLE xcom (key TEXT, value BLOB)")
        db.execute("INSERT INTO xcom VALUES (?, ?)", ("k", json.dumps({"password": secret}).encode()))
    db.close()
    leaks = [
        *sampler.leaks(forms),
        *scan_files([tmp_path], forms),
        *scan_sqlite(tmp_path / "db.sqlite", forms),
        *scan_texts({"log": f"{time.time()} {secret}", "clean": "nothing here"}, forms),
    ]
    wheres = [leak.where for leak in leaks]
    assert any(w.endswith(" cmdline") for w in wheres), wheres
    assert any(" environ of " in w for w in wheres), wheres
    assert any(w.startswith(f"file {tmp_path}/f.txt (mode") for w in wheres), wheres
    assert any(w.startswith(f"file {tmp_path}/db.sqlite") for w in wheres), wheres  # the bytes, too
    assert "table xcom row 1 column value" in wheres
    assert "log" in wheres and "clean" not in wheres
    assert not any(secret in str(leak) for leak in leaks)
    with pytest.raises(ValueError, match="would match by chance"):
        scan_texts({"x": "y"}, ["short"])


def test_the_scan_looks_for_every_form_and_never_shows_part_of_one():
    from urllib.parse import quote

    secret = "pw+/=" + base64.b32encode(bytes(range(20))).decode()
    forms = ecr_secret_forms([secret], hosts=["111111111111.dkr.ecr.eu-west-1.amazonaws.com"])
    token = base64.b64encode(f"AWS:{secret}".encode()).decode()
    assert {secret, token, quote(secret, safe=""), quote(token, safe="")} <= forms
    auth = {"username": "AWS", "password": secret, "serveraddress": "111111111111.dkr.ecr.eu-west-1.amazonaws.com"}
    assert base64.urlsafe_b64encode(json.dumps(auth).encode()).decode() in forms  # docker-py's X-Registry-Auth
    # A second secret cut by the edge of an excerpt is blanked whole, not shown in part.
    leaks = scan_texts({"log": "x" * 100 + secret + "-" * 70 + token + "y" * 100}, forms)
    assert leaks and not any(part in str(leak) for leak in leaks for part in (secret[:10], token[-10:]))
