"""
Digests, and what a daemon or a kubelet says about an image's. Pure, no I/O.

The image name itself (host, repository, tag, digest) is :class:`airflow_ecr.registry.ImageReference`.
"""

from __future__ import annotations

import re

from airflow_ecr.registry import ImageReference

DIGEST = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)


def is_digest(value: object) -> bool:
    """Whether ``value`` is a ``sha256:<64 hex>`` digest."""
    return isinstance(value, str) and DIGEST.fullmatch(value) is not None


def digest_in_pull_status(item: object) -> str | None:
    """The digest a pull reports (``{"status": "Digest: sha256:..."}``), or None for other lines."""
    if isinstance(item, dict):
        status = item.get("status")
        if isinstance(status, str) and status.startswith("Digest: ") and is_digest(status[8:].strip()):
            return status[8:].strip()
    return None


def repo_digests_for(inspect: dict[str, object], name: ImageReference) -> list[str]:
    """
    The digests the daemon remembers pulling this local image by, from ``name``'s repository.

    :param inspect: the daemon's ``GET /images/{name}/json`` answer.
    :param name: the image's name.
    """
    prefix = name.repository_path + "@"
    found = []
    entries = inspect.get("RepoDigests")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, str) and entry.startswith(prefix) and is_digest(entry[len(prefix) :]):
            found.append(entry[len(prefix) :])
    return list(dict.fromkeys(found))


def platform_of(inspect: dict[str, object]) -> str | None:
    """``os/architecture[/variant]`` of a local image (from its inspect answer), or None."""
    os_name, architecture = inspect.get("Os"), inspect.get("Architecture")
    if not os_name or not architecture:
        return None
    variant = inspect.get("Variant")
    return "/".join(str(p) for p in (os_name, architecture, variant) if p)


def digest_in_image_id(image_id: object, name: ImageReference) -> str | None:
    """
    The manifest digest a kubelet reports a container's image by, when it names ``name``'s repository:
    ``docker-pullable://host/repo@sha256:...`` (dockershim) or ``host/repo@sha256:...`` (containerd,
    CRI-O). None for a bare image id (``sha256:...``: the config digest, not the registry's) or another
    repository.

    :param image_id: a container status's ``imageID``.
    :param name: the image the container was given.
    """
    if not isinstance(image_id, str):
        return None
    reference = image_id.split("://", 1)[-1]
    repository, at, digest = reference.rpartition("@")
    if not at or not is_digest(digest):
        return None
    return digest if repository == name.repository_path else None
