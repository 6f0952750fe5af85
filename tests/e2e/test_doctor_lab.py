"""
``airflow-ecr doctor`` as a real subprocess (the console script of ``.venvs/af3``, once of
``.venvs/af2``) against the lab: the lab's dockerd, its registries by their real ECR names, and the
emulator answering STS and ECR on the AWS connection's ``endpoint_url``. One test per failure the
doctor can report: ECR deny, invalid and missing AWS credentials, daemon down (no socket, and the
lab's dockerd really stopped), registry down, missing tag, bad image reference, an endpoint that
does not serve STS (a private VPC), a region typo, a registry name no DNS knows, a repository under
a pull-through cache rule; plus the all-green run in JSON and as a table. Every run checks that
the token is in neither stdout nor stderr.

Run: ``AIRFLOW_ECR_LAB_DIR=/tmp/lab-x pytest tests/e2e/test_doctor_lab.py``.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import airflow_ecr_lab as lab_module
from airflow_ecr.testing.emulator import EmulatorClient
from helpers.airflow_harness import find_venv, new_access_key

pytestmark = [pytest.mark.lab, pytest.mark.timeout(300)]

ACCOUNT = "111111111111"
REGION = "eu-west-1"
HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
IMAGE = f"{HOST}/app/hello:1"
CHECKS = ("aws_identity", "ecr_permission", "host_cache", "docker_daemon", "registry", "image", "swarm")


@dataclass
class Run:
    """One ``airflow-ecr doctor`` run."""

    rc: int
    stdout: str
    stderr: str
    access_key: str
    seconds: float

    def json(self) -> dict[str, Any]:
        return json.loads(self.stdout)

    def statuses(self) -> dict[str, str]:
        return {c["name"]: c["status"] for c in self.json()["checks"]}

    def check(self, name: str) -> dict[str, Any]:
        return next(c for c in self.json()["checks"] if c["name"] == name)

    def describe(self) -> str:
        return f"rc={self.rc} ({self.seconds:.1f} s)\nstdout:\n{self.stdout}\nstderr:\n{self.stderr[-4000:]}"


def doctor(
    lab: Any,
    tmp_path: Path,
    *args: str,
    version: str = "3",
    credentials: bool = True,
    docker_url: str | None = None,
    docker_host_env: bool = False,
    access_key: str | None = None,
    extra_env: dict[str, str] | None = None,
) -> Run:
    """
    ``airflow-ecr doctor --aws-conn-id aws_lab ARGS`` in a fresh AIRFLOW_HOME, the AWS connection
    from ``AIRFLOW_CONN_AWS_LAB`` (``access_key`` or a unique one; no keys with ``credentials=False``),
    nothing of this process's AWS or Docker environment, the daemon given by ``--docker-url`` (or
    ``DOCKER_HOST`` with ``docker_host_env``).
    """
    venv = find_venv(version)
    if venv is None:
        pytest.fail(f"no Airflow {version} virtualenv (scripts/venvs.sh {version})", pytrace=False)
    home = Path(tmp_path) / f"home-{time.monotonic_ns()}"
    home.mkdir()
    access_key = access_key or new_access_key()
    connection: dict[str, Any] = {
        "conn_type": "aws",
        "extra": {"region_name": REGION, "endpoint_url": lab.emulator_url},
    }
    if credentials:
        connection.update(login=access_key, password="testing")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "AWS_", "PYTEST_", "DOCKER_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__ECR__CACHE_DIR": str(home / "cache"),
            "AIRFLOW_CONN_AWS_LAB": json.dumps(connection),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(home / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-aws-credentials"),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            **(extra_env or {}),
        }
    )
    url = docker_url or lab.docker_host
    argv = [str(venv / "bin" / "airflow-ecr"), "doctor", "--aws-conn-id", "aws_lab", *args]
    if docker_host_env:
        env["DOCKER_HOST"] = url
    else:
        argv += ["--docker-url", url]
    started = time.monotonic()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, check=False)
    return Run(result.returncode, result.stdout, result.stderr, access_key, time.monotonic() - started)


def assert_no_token(run: Run, emulator: EmulatorClient) -> None:
    """The account's current registry password, plain or as ECR's base64, is not in the output."""
    password = emulator.password(ACCOUNT)
    encoded = base64.b64encode(f"AWS:{password}".encode()).decode()
    for secret in (password, encoded):
        assert secret not in run.stdout and secret not in run.stderr, "the ECR token was printed"


# What each check needs (doctor skips a check when one of these did not pass), as docs/doctor.md says.
NEEDS = {"registry": ("ecr_permission", "docker_daemon"), "image": ("registry",), "swarm": ("docker_daemon",)}


def needing(name: str) -> set[str]:
    """The checks that need ``name``, directly or through another."""
    found = {c for c, needs in NEEDS.items() if name in needs}
    return found.union(*(needing(c) for c in found))


def assert_stopped_at(run: Run, name: str, code: int) -> dict[str, Any]:
    """``name`` failed with ``code``, the checks that need it were skipped, every other one passed."""
    assert run.rc == code, run.describe()
    data = run.json()
    assert (data["ok"], data["exit_code"]) == (False, code)
    statuses = run.statuses()
    skipped = needing(name)
    assert statuses[name] == "fail", run.describe()
    assert all(statuses[c] == "skip" for c in skipped), run.describe()
    assert all(statuses[c] == "ok" for c in CHECKS if c != name and c not in skipped), run.describe()
    failed = run.check(name)
    assert failed["exit_code"] == code and failed["fix"], failed
    return failed


def local_tags(lab: Any) -> set[str]:
    import docker

    client = docker.APIClient(base_url=lab.docker_host, timeout=30)
    return {tag for image in client.images() for tag in image.get("RepoTags") or []}


def untag(lab: Any, image: str) -> None:
    import docker

    client = docker.APIClient(base_url=lab.docker_host, timeout=30)
    if image in local_tags(lab):
        client.remove_image(image)  # the tag only: the layers stay for the other tags


# -- all green ----------------------------------------------------------------------------------
def test_all_green_json_and_table(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    untag(lab, IMAGE)  # other tests of the session may have pulled it: then a pull would not show
    before = local_tags(lab)
    run = doctor(lab, tmp_path, "--image", IMAGE, "--json")
    assert run.rc == 0, run.describe()
    data = run.json()
    assert (data["ok"], data["exit_code"], data["image"]) == (True, 0, IMAGE)
    assert run.statuses() == dict.fromkeys(CHECKS, "ok")  # the lab's daemon is a swarm manager
    identity = run.check("aws_identity")["details"]
    assert identity["account"] == ACCOUNT
    assert identity["arn"] == f"arn:aws:iam::{ACCOUNT}:user/{run.access_key}"
    assert identity["sts_endpoint"] == lab.emulator_url
    assert run.check("docker_daemon")["details"]["url"] == lab.docker_host
    image = run.check("image")["details"]
    assert image["digest"].startswith("sha256:") and image["platforms"] == ["linux/amd64"]
    assert run.check("swarm")["details"] == {"state": "active", "manager": True}
    # One STS and one ECR call, with this run's key; the manifest only: nothing was pulled.
    calls = emulator.calls(access_key=run.access_key)
    assert [c["target"].rsplit(".", 1)[1] for c in calls] == ["GetCallerIdentity", "GetAuthorizationToken"]
    assert local_tags(lab) == before and IMAGE not in before
    assert_no_token(run, emulator)

    # The same as a table, the daemon from DOCKER_HOST.
    table = doctor(lab, tmp_path, "--image", IMAGE, docker_host_env=True)
    assert table.rc == 0, table.describe()
    lines = table.stdout.splitlines()
    assert lines[0] == f"airflow-ecr doctor: {IMAGE}" and lines[-1] == "no check failed"
    for title in ("AWS identity", "ECR permission", "Host token cache", "Docker daemon", "Registry", "Image manifest"):
        assert any(line.startswith(f"│ {title} ") and "│ ok " in line for line in lines), table.stdout
    assert table.stderr == "", table.stderr
    assert_no_token(table, emulator)


def test_all_green_on_airflow_2(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    run = doctor(lab, tmp_path, "--image", IMAGE, "--json", version="2")
    assert run.rc == 0, run.describe()
    assert run.statuses() == dict.fromkeys(CHECKS, "ok")
    assert run.check("aws_identity")["details"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/{run.access_key}"
    assert_no_token(run, emulator)


def test_without_an_image_the_rest_is_skipped(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    run = doctor(lab, tmp_path, "--json")
    assert run.rc == 0, run.describe()
    assert run.statuses() == {
        "aws_identity": "ok",
        "ecr_permission": "skip",
        "host_cache": "ok",
        "docker_daemon": "ok",
        "registry": "skip",
        "image": "skip",
        "swarm": "ok",
    }
    assert run.check("registry")["summary"] == "not checked: no --image given"
    calls = emulator.calls(access_key=run.access_key)
    assert [c["target"].rsplit(".", 1)[1] for c in calls] == ["GetCallerIdentity"]


# -- AWS ----------------------------------------------------------------------------------------
def test_ecr_deny(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    emulator.faults(deny=[ACCOUNT])
    run = doctor(lab, tmp_path, "--image", IMAGE, "--json")
    failed = assert_stopped_at(run, "ecr_permission", 3)
    arn = f"arn:aws:iam::{ACCOUNT}:user/{run.access_key}"
    assert failed["fix"].startswith(f"grant ecr:GetAuthorizationToken to {arn}"), failed
    assert HOST in failed["summary"] and "AccessDenied" not in failed["fix"]


def assert_token_failed(run: Run, code: int) -> dict[str, Any]:
    """STS warned, the token check failed with ``code``; what needs no token ran, the registry checks did not."""
    assert run.rc == code and run.json()["exit_code"] == code, run.describe()
    assert run.statuses() == {
        "aws_identity": "warn",
        "ecr_permission": "fail",
        "host_cache": "ok",
        "docker_daemon": "ok",
        "registry": "skip",
        "image": "skip",
        "swarm": "ok",
    }, run.describe()
    assert run.check("image")["summary"] == "not checked: fix ECR permission first"
    return run.check("ecr_permission")


def test_invalid_aws_credentials(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    key = new_access_key()
    emulator.faults(invalid_keys=[key])
    run = doctor(lab, tmp_path, "--image", IMAGE, "--json", access_key=key)
    identity = run.check("aws_identity")
    assert "InvalidClientTokenId" in identity["summary"] and "renew them" in identity["fix"]
    failed = assert_token_failed(run, 3)
    assert "renew them" in failed["fix"] and "see above" not in failed["fix"]


def test_no_aws_credentials(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    run = doctor(lab, tmp_path, "--image", IMAGE, "--json", credentials=False)
    identity = run.check("aws_identity")
    assert identity["summary"].startswith("no AWS credentials found for aws_conn_id='aws_lab'"), identity
    failed = assert_token_failed(run, 3)
    assert "instance role" in failed["fix"]
    assert emulator.calls() == []  # boto3 gave up before any call


# -- private networks and typos (issue 15) --------------------------------------------------------
def test_an_endpoint_without_sts_warns_and_everything_else_runs(
    lab: Any, emulator: EmulatorClient, tmp_path: Path
) -> None:
    """The emulator plays an ECR-only VPC endpoint: STS calls get ECR's JSON, which boto3 cannot parse."""
    emulator.faults(sts_unserved=True)
    run = doctor(lab, tmp_path, "--image", IMAGE, "--json")
    assert run.rc == 0, run.describe()
    assert run.statuses() == {**dict.fromkeys(CHECKS, "ok"), "aws_identity": "warn"}, run.describe()
    identity = run.check("aws_identity")
    assert identity["summary"].startswith(f"{lab.emulator_url} does not serve STS"), identity
    assert identity["details"]["settings"]["access_key_id"] == run.access_key
    assert identity["details"]["settings"]["endpoint"] == lab.emulator_url
    assert "testing" not in run.stdout  # the secret access key
    calls = emulator.calls(access_key=run.access_key)
    assert [c["target"].rsplit(".", 1)[1] for c in calls] == ["GetAuthorizationToken"]
    assert_no_token(run, emulator)


def test_a_region_typo_is_told_as_one(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    typo = f"{ACCOUNT}.dkr.ecr.eu-west-3.amazonaws.com"
    run = doctor(lab, tmp_path, "--image", f"{typo}/app/hello:1", "--json")
    failed = assert_token_failed_after_sts(run)
    assert failed["fix"].startswith(f"check the account id ({ACCOUNT}) and region (eu-west-3) in the image name")
    assert "credentials" not in failed["fix"]


def assert_token_failed_after_sts(run: Run) -> dict[str, Any]:
    assert run.rc == 3, run.describe()
    statuses = run.statuses()
    assert (statuses["aws_identity"], statuses["ecr_permission"], statuses["docker_daemon"]) == ("ok", "fail", "ok")
    return run.check("ecr_permission")


def test_a_registry_name_the_daemon_cannot_resolve_points_at_the_image_name(lab: Any, emulator: EmulatorClient) -> None:
    """A token that ECR gave, a host no DNS knows (the lab's daemon really looks it up)."""
    from airflow_ecr import doctor as checks

    typo = f"{ACCOUNT}.dkr.ecr.eu-west-3.amazonaws.com"
    result = checks.check_registry(lab_state(lab, emulator, image=f"{typo}/app/hello:1"))
    assert (result.status, result.exit_code) == ("fail", 7), result
    assert f"lookup {typo}" in result.details["daemon_said"]
    assert (result.fix or "").startswith(f"check the account id ({ACCOUNT}) and region (eu-west-3) in the image name")


def test_a_pull_through_cache_repository_names_the_first_pull_permissions(
    lab: Any, emulator: EmulatorClient, tmp_path: Path
) -> None:
    emulator.faults(pull_through_rules=["docker-hub"])
    run = doctor(lab, tmp_path, "--image", f"{HOST}/docker-hub/library/busybox:1", "--json")
    failed = assert_stopped_at(run, "image", 8)
    assert failed["fix"].startswith(
        "repository docker-hub/library/busybox is under the pull-through cache rule 'docker-hub'"
    ), failed
    assert "ecr:BatchImportUpstreamImage and ecr:CreateRepository" in failed["fix"]
    calls = emulator.calls(access_key=run.access_key)
    assert [c["target"].rsplit(".", 1)[1] for c in calls][-1] == "DescribePullThroughCacheRules"
    assert_no_token(run, emulator)


def test_a_docker_hub_image_is_checked_by_its_pull_through_cache_name(
    lab: Any, emulator: EmulatorClient, tmp_path: Path
) -> None:
    """``[ecr] pull_through_cache`` set: doctor checks ``busybox:1.37`` as tasks pull it, from the lab's
    stand-in cache, which never imported that tag (a first pull it may not import)."""
    emulator.faults(pull_through_rules=["docker-hub"])
    option = {"AIRFLOW__ECR__PULL_THROUGH_CACHE": lab.raw["pull_through_cache"]["option"]}
    run = doctor(lab, tmp_path, "--image", "busybox:1.37", "--json", extra_env=option)
    failed = assert_stopped_at(run, "image", 8)
    assert f"{HOST}/docker-hub/library/busybox:1.37" in run.stdout, run.stdout
    assert "ecr:BatchImportUpstreamImage and ecr:CreateRepository" in failed["fix"], failed


# -- the daemon ---------------------------------------------------------------------------------
def test_daemon_socket_missing(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/no-docker.sock"
    run = doctor(lab, tmp_path, "--image", IMAGE, "--json", docker_url=url)
    failed = assert_stopped_at(run, "docker_daemon", 6)
    assert failed["summary"] == f"cannot reach the Docker daemon at {url}: no socket at {tmp_path}/no-docker.sock"
    assert "start the Docker daemon" in failed["fix"] and "--docker-url" in failed["fix"]
    assert_no_token(run, emulator)


def test_daemon_really_stopped(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    """The lab's dockerd stopped (SIGTERM to its pid), then restarted with its registries."""
    pid = int(lab_module.load(lab.dir)["pids"]["dockerd"])
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid):
            assert time.monotonic() < deadline, "the lab's dockerd did not stop"
            time.sleep(0.2)
        run = doctor(lab, tmp_path, "--image", IMAGE, "--json")
        failed = assert_stopped_at(run, "docker_daemon", 6)
        assert failed["summary"].startswith(f"cannot reach the Docker daemon at {lab.docker_host}: "), failed
        assert_no_token(run, emulator)
    finally:
        lab_module.restart_dockerd(lab.dir)
    again = doctor(lab, tmp_path, "--image", IMAGE, "--json")
    assert again.rc == 0, again.describe()


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


# -- the registry and the image -----------------------------------------------------------------
def test_registry_down(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    lab_module.stop_registry(lab.dir, ACCOUNT)
    try:
        run = doctor(lab, tmp_path, "--image", IMAGE, "--json")
    finally:
        lab_module.start_registry(lab.dir, ACCOUNT)
    failed = assert_stopped_at(run, "registry", 7)
    assert failed["summary"].startswith(f"cannot reach registry {HOST} from the Docker daemon: "), failed
    assert "connection refused" in failed["summary"]
    assert "VPC endpoint" in failed["fix"]
    assert_no_token(run, emulator)


def test_missing_tag(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    run = doctor(lab, tmp_path, "--image", f"{HOST}/app/hello:9", "--json")
    failed = assert_stopped_at(run, "image", 8)
    assert failed["summary"] == f"tag 9 not found in repository app/hello of {ACCOUNT} ({REGION})"
    assert failed["fix"] == "push it, or fix the tag"
    assert_no_token(run, emulator)


def test_bad_image_reference(lab: Any, emulator: EmulatorClient, tmp_path: Path) -> None:
    run = doctor(lab, tmp_path, "--image", "app/hello:1")
    assert (run.rc, run.stdout) == (2, ""), run.describe()
    assert run.stderr.startswith("airflow-ecr: error: Image 'app/hello:1' has no registry host"), run.stderr
    assert run.stderr.count("\n") == 1
    bad = doctor(lab, tmp_path, "--image", "1111.dkr.ecr.eu-west-1.amazonaws.com/app:1", "--json")
    assert bad.rc == 2 and bad.json()["exit_code"] == 2 and "12-digit account id" in bad.json()["error"]
    assert emulator.calls() == []  # rejected before any AWS call


# -- the registry checks in process, against the lab's daemon ------------------------------------
def lab_state(lab: Any, emulator: EmulatorClient, image: str = IMAGE, password: str | None = None) -> Any:
    """A DoctorState past the daemon check, holding the account's real token (or ``password``)."""
    import docker

    from airflow_ecr.doctor import DoctorState
    from airflow_ecr.tokens.token import EcrToken

    state = DoctorState(image=image, docker_url=lab.docker_host)
    state.arn = f"arn:aws:iam::{ACCOUNT}:user/doctor"
    state.token = EcrToken("AWS", password or emulator.password(ACCOUNT), f"https://{HOST}", time.time() + 3600, 0)
    state.client = docker.APIClient(base_url=lab.docker_host, timeout=30)
    state.daemon_platform = "linux/amd64"
    return state


def test_registry_rejecting_the_token(lab: Any, emulator: EmulatorClient) -> None:
    from airflow_ecr import doctor

    state = lab_state(lab, emulator, password="not-the-token")
    registry = doctor.check_registry(state)
    assert (registry.status, registry.exit_code) == ("fail", 3), registry
    assert registry.summary.startswith(f"registry {HOST} rejected the token ECR just issued: "), registry
    assert "401" in registry.summary
    manifest = doctor.check_manifest(state)
    assert (manifest.status, manifest.exit_code) == ("fail", 3), manifest
    assert manifest.fix is not None and manifest.fix.startswith(
        f"grant ecr:BatchGetImage and ecr:GetDownloadUrlForLayer on repository app/hello to {state.arn}"
    )
    assert "not-the-token" not in registry.summary + manifest.summary


def test_image_by_digest(lab: Any, emulator: EmulatorClient) -> None:
    from airflow_ecr import doctor

    by_tag = doctor.check_manifest(lab_state(lab, emulator))
    assert by_tag.status == "ok", by_tag
    digest = by_tag.details["digest"]
    by_digest = doctor.check_manifest(lab_state(lab, emulator, image=f"{HOST}/app/hello@{digest}"))
    assert by_digest.status == "ok" and by_digest.summary.startswith(f"digest {digest} is {digest}"), by_digest
    missing = "sha256:" + "0" * 64
    absent = doctor.check_manifest(lab_state(lab, emulator, image=f"{HOST}/app/hello@{missing}"))
    assert (absent.status, absent.exit_code, absent.fix) == ("fail", 8, "push it, or fix the digest"), absent
    assert absent.summary == f"digest {missing} not found in repository app/hello of {ACCOUNT} ({REGION})"


def test_image_without_the_daemons_platform_is_a_warning(lab: Any, emulator: EmulatorClient) -> None:
    from airflow_ecr import doctor

    state = lab_state(lab, emulator)
    state.daemon_platform = "linux/arm64"
    result = doctor.check_manifest(state)
    assert result.status == "warn" and "no linux/arm64 variant" in result.summary, result
    assert "exec format error" in (result.fix or "")
