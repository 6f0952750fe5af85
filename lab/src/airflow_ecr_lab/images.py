"""Root file systems for the lab's test images, built from the host's own binaries.

The lab has no internet, so images are ``docker import``-ed from tar archives made here:

- ``lab/busybox:1``: Debian's static busybox and a few applet links (``sh``, ``echo``, ``cat``, ...).
- ``lab/python:3.11``: Debian's ``/usr/bin/python3.11``, the shared libraries ``ldd`` lists for it,
  its extension modules and ``bash``, the standard library from ``/usr/lib/python3.11`` and busybox.
  ``bash`` is there because the docker provider's ``@task.docker`` runs ``bash -cx '... python3 ...'``.

Archives are built in memory (tens of MB) with :mod:`tarfile`; nothing is written to disk.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Iterable
from pathlib import Path

BUSYBOX_APPLETS = (
    "sh", "echo", "cat", "sleep", "env", "ls", "true", "false", "test", "[", "wc", "grep",
    "head", "tail", "sed", "tr", "printf", "id", "mkdir", "rm", "cp", "mv", "touch", "pwd",
    "uname", "hostname", "date", "base64", "sha256sum", "timeout", "kill", "ps", "xargs", "seq",
)  # fmt: skip
PYTHON_BINARY = Path("/usr/bin/python3.11")
PYTHON_STDLIB = Path("/usr/lib/python3.11")
# Not needed to run scripts in a container, and large or GUI-only.
PYTHON_SKIP_DIRS = frozenset(
    {
        "test",
        "dist-packages",
        "site-packages",
        "__pycache__",
        "idlelib",
        "turtledemo",
        "config-3.11-x86_64-linux-gnu",
    }
)
IMAGE_ENV = ("ENV PATH=/usr/local/bin:/usr/bin:/bin", "ENV LANG=C.UTF-8")
# The command that installs every Debian package the lab needs (host.py keeps the list).
_SETUP = "python -m airflow_ecr_lab setup --install"
_LDD_PATH = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")


class ImageBuildError(RuntimeError):
    """A host file the test images need is missing."""


def find_busybox() -> Path:
    """Debian's static busybox (package ``busybox-static``)."""
    for candidate in ("/bin/busybox", "/usr/bin/busybox"):
        if Path(candidate).is_file():
            return Path(candidate)
    found = shutil.which("busybox")
    if found:
        return Path(found)
    raise ImageBuildError(f"busybox not found: apt-get install busybox-static ({_SETUP})")


class _RootFs:
    """A tar archive being filled with a root file system, parents created on demand."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._tar = tarfile.open(fileobj=self._buffer, mode="w")  # noqa: SIM115 (closed by close())
        self._names: set[str] = set()

    def directory(self, name: str, mode: int = 0o755) -> None:
        name = name.strip("/")
        if not name or name in self._names:
            return
        self.directory(os.path.dirname(name))
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, mode
        self._tar.addfile(info)
        self._names.add(name)

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        if name in self._names:
            return
        self.directory(os.path.dirname(name))
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        self._tar.addfile(info)
        self._names.add(name)

    def file(self, name: str, source: Path) -> None:
        """Add ``source``'s content (symlinks followed) as the regular file ``name``."""
        name = name.strip("/")
        if name in self._names:
            return
        self.directory(os.path.dirname(name))
        real = source.resolve()
        info = tarfile.TarInfo(name)
        stat = real.stat()
        info.size, info.mode, info.mtime = stat.st_size, stat.st_mode & 0o7777, int(stat.st_mtime)
        with real.open("rb") as f:
            self._tar.addfile(info, f)
        self._names.add(name)

    def close(self) -> bytes:
        self._tar.close()
        return self._buffer.getvalue()


def busybox_rootfs() -> bytes:
    """A tar archive: ``/bin/busybox``, applet links in ``/bin`` and an empty ``/tmp``."""
    fs = _RootFs()
    fs.file("bin/busybox", find_busybox())
    for applet in BUSYBOX_APPLETS:
        fs.symlink(f"bin/{applet}", "busybox")
    fs.directory("tmp", 0o1777)
    fs.directory("etc")
    return fs.close()


def _shared_libraries(binaries: Iterable[Path]) -> set[str]:
    """Every library path ``ldd`` lists for ``binaries`` (the dynamic loader included)."""
    libraries: set[str] = set()
    for binary in binaries:
        result = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, check=False)
        # ldd fails on files that are not dynamic executables: nothing to add for them.
        for line in result.stdout.splitlines():
            match = _LDD_PATH.search(line)
            if match:
                libraries.add(match.group(1))
    return libraries


def _merged_usr(path: str) -> str:
    """The path below ``/usr`` on a merged-/usr system (``/lib/x`` -> ``/usr/lib/x``)."""
    directory = os.path.realpath(os.path.dirname(path))
    return os.path.join(directory, os.path.basename(path))


def python_rootfs() -> bytes:
    """A tar archive of Debian's Python 3.11 with its standard library, bash and busybox."""
    if not PYTHON_BINARY.is_file() or not PYTHON_STDLIB.is_dir():
        raise ImageBuildError(f"{PYTHON_BINARY} not found: apt-get install python3.11 ({_SETUP})")
    bash = Path(shutil.which("bash") or "/usr/bin/bash")
    fs = _RootFs()
    # Merged /usr as on Debian 12, so the paths ldd prints (/lib/..., /lib64/...) resolve.
    for top in ("bin", "lib", "lib64", "sbin"):
        fs.directory(f"usr/{top}")
        fs.symlink(top, f"usr/{top}")
    fs.file("usr/bin/python3.11", PYTHON_BINARY)
    fs.symlink("usr/bin/python3", "python3.11")
    fs.symlink("usr/bin/python", "python3.11")
    fs.file("usr/bin/bash", bash)
    busybox = find_busybox()
    fs.file("usr/bin/busybox", busybox)
    for applet in BUSYBOX_APPLETS:
        fs.symlink(f"usr/bin/{applet}", "busybox")

    extensions: list[Path] = []
    for root, dirs, files in os.walk(PYTHON_STDLIB):
        dirs[:] = sorted(d for d in dirs if d not in PYTHON_SKIP_DIRS)
        for name in sorted(files):
            source = Path(root, name)
            if not source.exists():  # a dangling symlink (Debian links some config files)
                continue
            fs.file(str(source), source)
            if name.endswith(".so"):
                extensions.append(source)
    for library in sorted(_shared_libraries([PYTHON_BINARY, bash, *extensions])):
        fs.file(_merged_usr(library), Path(library))
    fs.directory("tmp", 0o1777)
    fs.directory("etc")
    return fs.close()
