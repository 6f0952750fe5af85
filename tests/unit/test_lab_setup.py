"""The lab's Debian packages: one list in the package, named by the preflight, printed or installed by ``setup``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import airflow_ecr_lab as lab

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
    assert "`python -m airflow_ecr_lab setup --install`" in message
    assert "scripts/" not in message, "the wheel ships no scripts/"


def test_install_needs_root(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(lab.os, "geteuid", lambda: 1000)
    assert lab.main(["setup", "--install"]) == 1
    assert "needs root" in capsys.readouterr().err


def _script_list(script: str, name: str) -> list[str]:
    listed = re.search(rf"^{name}=\((.*?)\)", script, flags=re.DOTALL | re.MULTILINE)
    assert listed, f"scripts/setup-debian.sh no longer has a {name}=(...) list"
    return listed.group(1).split()


def test_the_checkout_setup_script_installs_what_the_lab_needs_and_the_demo_only_that() -> None:
    # scripts/setup-debian.sh: `demo` installs the lab's packages (and certificates), the test
    # command those and the test suite's own; each name in one list only.
    script = (REPO / "scripts" / "setup-debian.sh").read_text()
    demo, tests_only = _script_list(script, "demo_packages"), _script_list(script, "test_packages")
    missing = set(lab.DEBIAN_PACKAGES) - set(demo)
    assert not missing, f"scripts/setup-debian.sh demo does not install {sorted(missing)} (the lab needs them)"
    assert set(demo) - set(lab.DEBIAN_PACKAGES) <= {"ca-certificates"}, "the demo installs more than the lab needs"
    assert not set(demo) & set(tests_only), "a package is listed for both the demo and the tests"
    assert {"postgresql", "redis-server", "chromium"} <= set(tests_only)
    demo_script = (REPO / "scripts" / "demo.sh").read_text()
    assert "bash scripts/setup-debian.sh demo\n" in demo_script
    quickstart = (REPO / "docs" / "quickstart.md").read_text()
    unnamed = [package for package in demo if f"`{package}`" not in quickstart]
    assert not unnamed, f"docs/quickstart.md does not say the demo installs {unnamed}"


@pytest.mark.parametrize("missing", [[], ["docker-registry"]], ids=["all-installed", "one-missing"])
def test_setup_says_what_to_do_only_when_something_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], missing: list[str]
) -> None:
    monkeypatch.setattr(lab.host, "missing_packages", lambda: missing)
    assert lab.main(["setup"]) == 0
    status = capsys.readouterr().err
    if missing:
        assert "missing docker-registry: run the line above as root, or add --install" in status
    else:
        assert "installed: nothing to do" in status
        assert "run the line" not in status and "--install" not in status, status
