"""The lab's Debian packages: one list in the package, named by the preflight, printed or installed by ``setup``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow_ecr.testing import lab

REPO = Path(__file__).resolve().parents[2]


def test_setup_prints_one_apt_get_line_with_every_package(capsys: pytest.CaptureFixture[str]) -> None:
    assert lab.main(["setup"]) == 0
    out = capsys.readouterr().out
    assert out == f"apt-get update && apt-get install -y --no-install-recommends {' '.join(lab.DEBIAN_PACKAGES)}\n"
    assert set(lab.DEBIAN_PACKAGES) >= {"docker.io", "docker-registry", "util-linux", "iproute2", "busybox-static"}


def test_missing_tools_name_their_packages_and_a_command_the_package_ships(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(lab.os, "geteuid", lambda: 0)
    monkeypatch.setenv("PATH", str(tmp_path))  # no dockerd, docker-registry, ip, unshare, nsenter
    with pytest.raises(lab.LabError) as caught:
        lab._preflight(lab._Paths(tmp_path / "lab"))
    message = str(caught.value)
    assert message.startswith("missing dockerd, docker-registry, unshare, nsenter, ip ")
    assert "(Debian packages: docker.io docker-registry util-linux iproute2" in message
    assert "`python -m airflow_ecr.testing.lab setup --install`" in message
    assert "scripts/" not in message, "the wheel ships no scripts/"


def test_install_needs_root(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(lab.os, "geteuid", lambda: 1000)
    assert lab.main(["setup", "--install"]) == 1
    assert "needs root" in capsys.readouterr().err


def test_the_checkout_setup_script_installs_what_the_lab_needs() -> None:
    # scripts/setup-debian.sh (demo and test command) installs more; it must not install less.
    script = (REPO / "scripts" / "setup-debian.sh").read_text()
    listed = re.search(r"^packages=\((.*?)\)", script, flags=re.DOTALL | re.MULTILINE)
    assert listed, "scripts/setup-debian.sh no longer has a packages=(...) list"
    missing = set(lab.DEBIAN_PACKAGES) - set(listed.group(1).split())
    assert not missing, (
        f"scripts/setup-debian.sh does not install {sorted(missing)} (airflow_ecr.testing.lab needs them)"
    )
