"""The lab's test images: imported into its daemon (:mod:`airflow_ecr_lab.images`), pushed to every registry."""

from __future__ import annotations

from typing import Any

from airflow_ecr.testing.emulator_admin import EmulatorClient
from airflow_ecr_lab import images
from airflow_ecr_lab.dockerd import docker_client
from airflow_ecr_lab.messages import LabError
from airflow_ecr_lab.paths import LabPaths, emulator_token
from airflow_ecr_lab.spec import (
    ACCOUNT_IMAGES,
    ANONYMOUS_HOST,
    BUSYBOX_IMAGE,
    LAB_REGISTRIES,
    PULL_THROUGH_ACCOUNT,
    PULL_THROUGH_IMAGES,
    PULL_THROUGH_PREFIX,
    PYTHON_ACCOUNT,
    PYTHON_IMAGE,
)


def _push(client: Any, local: str, target: str, auth: dict[str, str] | None) -> None:
    repository, tag = target.rsplit(":", 1)
    client.api.tag(local, repository, tag)
    for event in client.api.push(repository, tag=tag, auth_config=auth, stream=True, decode=True):
        if "error" in event:
            raise LabError(f"pushing {target} failed: {event['error']}")
    # Tests must really pull: only the lab's local names stay in the daemon.
    client.api.remove_image(target, noprune=True)


def load_images(paths: LabPaths, emulator_url: str) -> dict[str, list[str]]:
    """Import the test images and push them everywhere; returns the refs per registry host.

    :param paths: the lab's layout.
    :param emulator_url: the lab's emulator, which gives each account registry's password.
    """
    emulator = EmulatorClient(emulator_url, timeout=5, token=emulator_token(paths))
    client = docker_client(paths.socket)
    try:
        for ref, build, command in (
            (BUSYBOX_IMAGE, images.busybox_rootfs, '["sh"]'),
            (PYTHON_IMAGE, images.python_rootfs, '["python3"]'),
        ):
            repository, tag = ref.rsplit(":", 1)
            if not client.images.list(name=ref):  # kept across restarts: import once per data root
                changes = [*images.IMAGE_ENV, f"CMD {command}"]
                client.api.import_image_from_data(build(), repository=repository, tag=tag, changes=changes)
        # The decorator runs `bash -cx '... python3 ...'` with no network: prove that works here.
        output = client.containers.run(
            PYTHON_IMAGE,
            ["bash", "-c", 'python3 -c "import json, pickle, base64, sys; print(sys.version_info[:2])"'],
            network_mode="none",
            remove=True,
        )
        if b"(3, 11)" not in output:
            raise LabError(f"{PYTHON_IMAGE} does not run python3: {output!r}")

        pushed: dict[str, list[str]] = {}
        for account in LAB_REGISTRIES:
            password = emulator.password(account.account_id, account.region)
            auth = {"username": "AWS", "password": password, "serveraddress": account.host}
            contents = list(ACCOUNT_IMAGES)
            if account.account_id == PYTHON_ACCOUNT:
                contents.append((PYTHON_IMAGE, PYTHON_IMAGE))
            if account.account_id == PULL_THROUGH_ACCOUNT and not account.replica:
                # The blobs are already in this registry: the push only mounts them (no upload).
                contents += [(local, f"{PULL_THROUGH_PREFIX}/library/{name}") for local, name in PULL_THROUGH_IMAGES]
            for local, name in contents:
                _push(client, local, f"{account.host}/{name}", auth)
            pushed[account.host] = [f"{account.host}/{name}" for _, name in contents]
        anonymous = f"{ANONYMOUS_HOST}/{BUSYBOX_IMAGE}"
        _push(client, BUSYBOX_IMAGE, anonymous, None)
        pushed[ANONYMOUS_HOST] = [anonymous]
        return pushed
    finally:
        client.close()
