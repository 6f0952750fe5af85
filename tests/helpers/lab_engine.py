"""What tests do to the lab's Docker engine directly."""

from __future__ import annotations

import contextlib
from typing import Any

import docker


def remove_local_image(lab: dict[str, Any], image: str) -> None:
    """Remove ``image`` from the lab's engine, so that the next pull must reach the registry with a login
    (a swarm node, or a task that does not force a pull, keeps a local image otherwise)."""
    client = docker.APIClient(base_url=lab["docker_host"])
    try:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.remove_image(image, force=True)
    finally:
        client.close()
