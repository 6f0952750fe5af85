"""What the lab needs from the host: root, tools from Debian packages, Python modules, a short path.

:data:`HOST_TOOLS` is the one list of what the lab runs from the host and the Debian 12 package of
each: ``setup`` prints (or runs) the ``apt-get`` line for them, and :func:`preflight` names the
packages of the tools it misses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from airflow_ecr_lab import images
from airflow_ecr_lab.messages import LabError, say
from airflow_ecr_lab.paths import MAX_SOCKET_PATH, LabPaths

# What the lab runs from the host, and the Debian 12 package of each: the one list that `setup`
# installs and the preflight names packages from (ldd and bash come with Essential packages).
HOST_TOOLS = (
    ("dockerd", "docker.io"),
    ("docker-registry", "docker-registry"),
    ("unshare", "util-linux"),
    ("nsenter", "util-linux"),
    ("ip", "iproute2"),
    ("busybox", "busybox-static"),  # the test images' shell and applets
    (str(images.PYTHON_BINARY), "python3.11"),  # the python test image's interpreter
)
DEBIAN_PACKAGES = tuple(dict.fromkeys(package for _, package in HOST_TOOLS))
SETUP_COMMAND = "python -m airflow_ecr_lab setup"


def preflight(paths: LabPaths) -> None:
    """Raise :class:`LabError` saying what to do unless the lab can start at ``paths`` on this host.

    :param paths: the lab's layout.
    """
    if os.geteuid() != 0:
        raise LabError("the lab needs root (dockerd, namespaces, port 443): run it with sudo or as root")
    missing = [(tool, package) for tool, package in HOST_TOOLS if not have_tool(tool)]
    if missing:
        tools = ", ".join(tool for tool, _ in missing)
        packages = " ".join(dict.fromkeys(package for _, package in missing))
        raise LabError(
            f"missing {tools} (Debian packages: {packages}): run `{SETUP_COMMAND} --install` as root, "
            f"or install them with `apt-get update && apt-get install -y {packages}`"
        )
    for module, extra in (
        ("docker", "apache-airflow-providers-docker"),
        ("cryptography", "airflow-ecr[testing]"),
    ):
        try:
            __import__(module)
        except ImportError as exc:
            raise LabError(f"python module {module!r} missing: pip install {extra}") from exc
    deepest = paths.docker / "exec" / "containerd" / "containerd.sock"
    if len(str(deepest)) > MAX_SOCKET_PATH:
        raise LabError(f"lab dir {paths.root} is too long for unix sockets ({deepest}); use a shorter --dir")


def have_tool(tool: str) -> bool:
    """True when the host has ``tool`` (a command on PATH, an absolute path, or busybox).

    :param tool: a command name or an absolute path.
    """
    if tool == "busybox":
        try:
            images.find_busybox()
        except images.ImageBuildError:
            return False
        return True
    return Path(tool).is_file() if tool.startswith("/") else shutil.which(tool) is not None


def apt_command(packages: tuple[str, ...] = DEBIAN_PACKAGES) -> str:
    """The shell line that installs ``packages`` on Debian (what ``setup`` prints).

    :param packages: Debian package names (default: everything the lab needs).
    """
    return f"apt-get update && apt-get install -y --no-install-recommends {' '.join(packages)}"


def missing_packages() -> list[str]:
    """The lab's Debian packages that dpkg does not list as installed (all of them without dpkg)."""
    missing = []
    for package in DEBIAN_PACKAGES:
        try:
            status = subprocess.run(
                ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
            ).stdout
        except OSError:
            status = ""
        if status != "install ok installed":
            missing.append(package)
    return missing


def setup(install: bool = False) -> None:
    """Print the ``apt-get`` line of the lab's Debian packages; with ``install``, run it for those missing.

    :param install: install the missing packages (needs root and apt-get).
    """
    if not install:
        print(apt_command())
        missing = missing_packages()
        if missing:
            state = f"missing {', '.join(missing)}: run the line above as root, or add --install"
        else:
            state = f"all {len(DEBIAN_PACKAGES)} Debian packages installed: nothing to do"
        print(f"lab: setup     {state}", file=sys.stderr)
        return
    if os.geteuid() != 0:
        raise LabError(f"installing Debian packages needs root: run `{SETUP_COMMAND} --install` with sudo or as root")
    if shutil.which("apt-get") is None:
        raise LabError(f"apt-get not found: install the equivalents of {' '.join(DEBIAN_PACKAGES)} yourself")
    missing = missing_packages()
    if not missing:
        say("setup", f"all {len(DEBIAN_PACKAGES)} Debian packages present")
        return
    say("setup", f"installing {' '.join(missing)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        if subprocess.run(argv, env=env, check=False).returncode != 0:
            raise LabError(f"`{' '.join(argv)}` failed (see its output above)")
    say("setup", "done")
