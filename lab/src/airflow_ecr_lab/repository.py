"""Change what a lab registry holds, as a CI pipeline would, and count the requests it served.

- :func:`push_marker_image`: push a new image (``lab/busybox:1`` plus ``/marker``) under a tag;
- :func:`push_index`: push a multi-arch index (manifest list) of manifests already in the repository;
- :func:`delete_manifest`: delete a manifest by digest (as a lifecycle policy does);
- :func:`registry_requests`: the requests a registry served, from its access log.

Registry HTTP goes through the lab's proxy with the lab CA, as task processes reach the registries.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow_ecr_lab.dockerd import docker_client
from airflow_ecr_lab.emulator_process import emulator_client
from airflow_ecr_lab.health import load
from airflow_ecr_lab.messages import LabError
from airflow_ecr_lab.paths import LabPaths
from airflow_ecr_lab.spec import BUSYBOX_IMAGE

DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
# One line of the registry's (Apache combined) access log.
_ACCESS = re.compile(
    r'^\S+ - \S+ \[[^\]]+\] "(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3}) \S+ '
    r'"[^"]*" "(?P<agent>[^"]*)"'
)


@dataclass(frozen=True)
class RegistryRequest:
    """One request a lab registry served."""

    method: str
    path: str
    status: int
    user_agent: str

    @property
    def manifest(self) -> bool:
        return "/manifests/" in self.path

    @property
    def blob(self) -> bool:
        return "/blobs/" in self.path


def _account(info: dict[str, Any], account_id: str) -> dict[str, Any]:
    for account in info["accounts"]:
        if account["account_id"] == account_id:
            return account
    raise LabError(f"no account {account_id} in this lab")


def _auth(info: dict[str, Any], account_id: str) -> dict[str, str]:
    account = _account(info, account_id)
    password = emulator_client(info, timeout=5).password(account_id)
    return {"username": "AWS", "password": password, "serveraddress": account["host"]}


def _session(info: dict[str, Any], auth: dict[str, str]) -> Any:
    import requests

    session = requests.Session()
    session.trust_env = False
    session.proxies = {"https": info["https_proxy"]}
    session.verify = info["ca_cert"]
    session.auth = (auth["username"], auth["password"])
    return session


def push_marker_image(directory: Path | None, account_id: str, target: str, marker: str) -> str:
    """Push a new image, ``lab/busybox:1`` with ``/marker`` holding ``marker``, as ``target``; returns its digest.

    :param directory: the lab directory.
    :param account_id: the account whose registry receives it.
    :param target: ``repository:tag`` inside that registry.
    :param marker: what ``cat /marker`` prints in the new image.
    """
    paths = LabPaths.of(directory)
    info = load(paths.root)
    host = _account(info, account_id)["host"]
    repository, tag = f"{host}/{target}".rsplit(":", 1)
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        data = (marker + "\n").encode()
        entry = tarfile.TarInfo("marker")
        entry.size, entry.mode = len(data), 0o644
        tar.addfile(entry, io.BytesIO(data))
    client = docker_client(paths.socket)
    try:
        container = client.api.create_container(BUSYBOX_IMAGE, ["true"], network_disabled=True)
        try:
            client.api.put_archive(container["Id"], "/", archive.getvalue())
            client.api.commit(container["Id"], repository=repository, tag=tag)
        finally:
            client.api.remove_container(container["Id"], force=True)
        digest = None
        for event in client.api.push(
            repository, tag=tag, auth_config=_auth(info, account_id), stream=True, decode=True
        ):
            if "error" in event:
                raise LabError(f"pushing {repository}:{tag} failed: {event['error']}")
            digest = (event.get("aux") or {}).get("Digest") or digest
        # Tasks must pull it: only the lab's own images stay local.
        client.api.remove_image(f"{repository}:{tag}", force=True)
    finally:
        client.close()
    if not digest:
        raise LabError(f"pushing {repository}:{tag} reported no digest")
    return str(digest)


def push_index(directory: Path | None, account_id: str, target: str, platforms: dict[str, str]) -> str:
    """Push a Docker manifest list as ``target``; returns its digest.

    :param directory: the lab directory.
    :param account_id: the account whose registry receives it.
    :param target: ``repository:tag`` inside that registry.
    :param platforms: ``os/architecture`` -> a digest of a manifest already in that repository.
    """
    info = load(LabPaths.of(directory).root)
    host = _account(info, account_id)["host"]
    repository, tag = target.rsplit(":", 1)
    session = _session(info, _auth(info, account_id))
    entries = []
    for platform, digest in platforms.items():
        got = session.head(
            f"https://{host}/v2/{repository}/manifests/{digest}", headers={"Accept": DOCKER_MANIFEST}, timeout=30
        )
        if got.status_code != 200:
            raise LabError(f"{repository}@{digest} is not in {host} (HTTP {got.status_code})")
        os_name, architecture = platform.split("/", 1)
        entries.append(
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": digest,
                "size": int(got.headers["Content-Length"]),
                "platform": {"os": os_name, "architecture": architecture},
            }
        )
    body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}).encode()
    put = session.put(
        f"https://{host}/v2/{repository}/manifests/{tag}", data=body, headers={"Content-Type": DOCKER_LIST}, timeout=30
    )
    if put.status_code != 201:
        raise LabError(f"pushing the index {repository}:{tag} failed: HTTP {put.status_code} {put.text[:300]}")
    return str(put.headers["Docker-Content-Digest"])


def delete_manifest(directory: Path | None, account_id: str, repository: str, digest: str) -> None:
    """Delete ``repository@digest`` from an account's registry (its tags go with it).

    :param directory: the lab directory.
    :param account_id: the account.
    :param repository: the repository.
    :param digest: the manifest's digest.
    """
    info = load(LabPaths.of(directory).root)
    host = _account(info, account_id)["host"]
    session = _session(info, _auth(info, account_id))
    deleted = session.delete(f"https://{host}/v2/{repository}/manifests/{digest}", timeout=30)
    if deleted.status_code != 202:
        raise LabError(f"deleting {repository}@{digest} failed: HTTP {deleted.status_code} {deleted.text[:300]}")


def registry_requests(directory: Path | None, name: str) -> list[RegistryRequest]:
    """Every request the registry ``name`` (an account id, or ``anonymous``) served, oldest first.

    :param directory: the lab directory.
    :param name: the registry.
    """
    log = LabPaths.of(directory).registry(name) / "registry.log"
    found = []
    for line in log.read_text(errors="replace").splitlines():
        match = _ACCESS.match(line)
        if match:
            found.append(RegistryRequest(match["method"], match["path"], int(match["status"]), match["agent"]))
    return found
