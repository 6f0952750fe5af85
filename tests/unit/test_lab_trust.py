"""
The lab's trust boundary (issue 22, defect 2): the lab runs as root, so its directory must be its
user's own, no lab file is opened through a symlink, and the emulator's admin API answers only
the holder of the lab's token. Real directories, real symlinks, a real emulator on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import airflow_ecr_lab as lab
from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount, EmulatorClient
from airflow_ecr_lab import emulator_client
from airflow_ecr_lab.paths import LabPaths, locked, write_json

ACCT = "111111111111"
NOBODY = 65534
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another user needs root")


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file the lab must never write: where a planted symlink points."""
    path = tmp_path / "victim"
    path.write_text("precious\n")
    return path


def private(tmp_path: Path) -> Path:
    directory = tmp_path / "lab"
    directory.mkdir(mode=0o700)
    return directory


@needs_root
def test_a_lab_directory_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    """Fails on the old code: a directory another user made in /tmp was taken as the lab's."""
    directory = private(tmp_path)
    os.chown(directory, NOBODY, NOBODY)
    with pytest.raises(lab.LabError) as err, locked(LabPaths.of(directory)):
        pass
    assert str(err.value) == (
        f"The lab directory {directory} is owned by uid {NOBODY}, not by the user running the lab (uid 0): the lab "
        "runs as root and trusts what is in it, so use a directory of your own with mode 0700 (e.g. `mktemp -d`, "
        "or leave AIRFLOW_ECR_LAB_DIR and --dir unset)."
    )
    assert not (directory / ".lock").exists()


def test_a_lab_directory_others_can_write_to_is_refused(tmp_path: Path) -> None:
    """Fails on the old code: a world-writable lab directory was used as it was."""
    directory = private(tmp_path)
    directory.chmod(0o777)
    with (
        pytest.raises(lab.LabError, match=r"is writable by its group or others \(mode 0777\)"),
        locked(LabPaths.of(directory)),
    ):
        pass


@needs_root
def test_a_symlink_someone_else_planted_as_the_lab_directory_is_refused(tmp_path: Path) -> None:
    target = private(tmp_path)
    link = tmp_path / "planted"
    link.symlink_to(target)
    os.lchown(link, NOBODY, NOBODY)
    with pytest.raises(lab.LabError, match=f"is a symlink owned by uid {NOBODY}"):
        LabPaths.of(link)


def test_the_lock_is_never_opened_through_a_symlink(tmp_path: Path, victim: Path) -> None:
    """Fails on the old code: ``open(".lock", "w")`` truncated whatever ``.lock`` pointed to."""
    directory = private(tmp_path)
    (directory / ".lock").symlink_to(victim)
    with (
        pytest.raises(lab.LabError, match=r"\.lock is a symlink: the lab never writes through one"),
        locked(LabPaths.of(directory)),
    ):
        pass
    assert victim.read_text() == "precious\n"


def test_json_files_are_never_written_through_a_planted_temp_symlink(tmp_path: Path, victim: Path) -> None:
    """Fails on the old code: ``write_json`` wrote its fixed-name temp file through the symlink."""
    directory = private(tmp_path)
    (directory / ".lab.json.tmp").symlink_to(victim)
    write_json(directory / "lab.json", {"ok": True})
    assert victim.read_text() == "precious\n"
    written = directory / "lab.json"
    assert json.loads(written.read_text()) == {"ok": True}
    assert not written.is_symlink() and stat.S_IMODE(written.stat().st_mode) == 0o600


def test_the_default_lab_directory_is_private_to_its_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fails on the old code: the default was /tmp/airflow-ecr-lab, which anyone can create first."""
    monkeypatch.delenv(lab.ENV_DIR, raising=False)
    runtime = private(tmp_path)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    assert lab.default_dir() == runtime / "airflow-ecr-lab"
    with locked(LabPaths.of(None)):
        pass
    assert stat.S_IMODE((runtime / "airflow-ecr-lab").stat().st_mode) == 0o700
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    if os.geteuid() == 0:
        assert lab.default_dir() == Path("/run/airflow-ecr-lab")


# -- the emulator's admin API ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def emu() -> Iterator[EcrEmulator]:
    with EcrEmulator([EmulatedAccount(ACCT, "eu-west-1")]) as emulator:
        yield emulator


def admin_get(emu: EcrEmulator, path: str, authorization: str | None) -> int:
    headers = {"Authorization": authorization} if authorization else {}
    request = urllib.request.Request(f"{emu.url}/_emulator/{path}", headers=headers)  # noqa: S310 - loopback
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic QVdTOng="])
def test_the_admin_api_answers_no_one_without_the_token(emu: EcrEmulator, authorization: str | None) -> None:
    """Fails on the old code: anyone on loopback read a registry's password (and switched faults)."""
    for path in (f"password/{ACCT}", "calls", "health", "faults"):
        assert admin_get(emu, path, authorization) == 401, path


def test_the_admin_api_answers_the_tokens_holder(emu: EcrEmulator) -> None:
    assert admin_get(emu, f"password/{ACCT}", f"Bearer {emu.admin_token}") == 200
    assert EmulatorClient(emu.url, token=emu.admin_token).password(ACCT) == emu.password(ACCT)[0]


def test_the_labs_token_is_its_owners_only_and_reaches_the_emulator_and_its_clients(tmp_path: Path) -> None:
    from airflow_ecr.testing.emulator.cli import load_config
    from airflow_ecr_lab.paths import emulator_token, new_emulator_token

    directory = private(tmp_path)
    paths = LabPaths.of(directory)
    with pytest.raises(lab.LabError, match="has no emulator admin token"):
        emulator_token(paths)
    token = new_emulator_token(paths)
    assert stat.S_IMODE(paths.emulator_token.stat().st_mode) == 0o600
    assert emulator_token(paths) == token and len(token) >= 43  # 256 random bits
    config = directory / "config.json"
    config.write_text(json.dumps({"accounts": [], "admin_token_file": str(paths.emulator_token)}))
    assert load_config(config)[1]["admin_token"] == token
    with EcrEmulator([EmulatedAccount(ACCT, "eu-west-1")], admin_token=token) as emulator:
        client = emulator_client({"dir": str(directory), "emulator_url": emulator.url})
        assert client.health()["ok"] is True
