"""
Example DAGs that Airflow's providers keep in their source distributions (``tests/system/...``), read
at test time from the sdist of the version installed in a test environment, downloaded from PyPI as
an install would be and cached outside the checkout (never committed here).
"""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import requests

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "airflow-ecr" / "sdists"


def installed_version(venv: Path, distribution: str) -> str:
    """The version of ``distribution`` installed in ``venv``."""
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    return subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], check=True, capture_output=True, text=True
    ).stdout.strip()


def sdist(distribution: str, version: str) -> Path:
    """The source distribution of ``distribution==version`` from PyPI (cached)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    for cached in CACHE.glob(f"{distribution.replace('-', '_')}-{version}.tar.gz"):
        return cached
    # The simple index (PEP 691's JSON form), which is what installers read.
    index = requests.get(
        f"https://pypi.org/simple/{distribution}/",
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
        timeout=60,
    )
    index.raise_for_status()
    name = f"{distribution.replace('-', '_')}-{version}.tar.gz"
    url = next(f["url"] for f in index.json()["files"] if f["filename"] == name)
    target = CACHE / url.rsplit("/", 1)[-1]
    partial = target.with_suffix(".part")
    with requests.get(url, timeout=120, stream=True) as answer:
        answer.raise_for_status()
        with partial.open("wb") as out:
            for chunk in answer.iter_content(1 << 16):
                out.write(chunk)
    partial.replace(target)
    return target


def example_dag(venv: Path, distribution: str, member: str) -> str:
    """
    The text of an example DAG in the sdist of ``distribution`` as installed in ``venv``.

    :param member: its path in the sdist after the top directory (``tests/system/docker/example_docker.py``).
    """
    with tarfile.open(sdist(distribution, installed_version(venv, distribution))) as archive:
        for name in archive.getnames():
            if name.split("/", 1)[-1] == member:
                extracted = archive.extractfile(name)
                assert extracted is not None
                return extracted.read().decode()
    raise AssertionError(f"{member} is not in the sdist of {distribution}")


def edited(text: str, edits: list[tuple[str, str, str]]) -> str:
    """
    ``text`` with each ``(old, new, why)`` edit made, each ``old`` found exactly once (an upstream
    change that moves it fails the test rather than going unnoticed).
    """
    for old, new, why in edits:
        assert text.count(old) == 1, f"{old!r} (edited because: {why}) is not in the upstream file exactly once"
        text = text.replace(old, new)
    return text
