"""Image names as Docker reads them: registry host, repository, tag and digest. Pure, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass

from docker import auth
from docker.utils import parse_repository_tag

DIGEST = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)
DEFAULT_TAG = "latest"


def is_digest(value: object) -> bool:
    """Whether ``value`` is a ``sha256:<64 hex>`` digest."""
    return isinstance(value, str) and DIGEST.fullmatch(value) is not None


@dataclass(frozen=True)
class ImageName:
    """
    One image reference, split as docker-py splits it when it pulls.

    :param registry: the registry host.
    :param repository: the repository inside the registry.
    :param tag: the tag (``latest`` when the name has neither tag nor digest), or None.
    :param digest: the digest the name pins, or None.
    """

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @classmethod
    def parse(cls, image: str) -> ImageName:
        """Split ``image`` (``host/repo:tag``, ``host/repo@sha256:...`` or ``host/repo:tag@sha256:...``)."""
        name, suffix = parse_repository_tag(image)
        tag = digest = None
        if suffix is not None and suffix.startswith("sha256:"):
            digest = suffix
            name, tag = parse_repository_tag(name)
        else:
            tag = suffix
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        registry, repository = auth.resolve_repository_name(name)
        return cls(registry, repository, tag, digest)

    @property
    def repository_path(self) -> str:
        """``host/repository``: the name the daemon lists in ``RepoDigests`` and ``RepoTags``."""
        return f"{self.registry}/{self.repository}"

    @property
    def tagged(self) -> str:
        """``host/repository:tag``: what a pin is looked up by (the default tag spelled out)."""
        return f"{self.repository_path}:{self.tag or DEFAULT_TAG}"

    def on(self, host: str) -> str:
        """This image's full name in another registry (a replica): same repository, tag and digest."""
        name = f"{host}/{self.repository}" + (f":{self.tag}" if self.tag else "")
        return name + (f"@{self.digest}" if self.digest else "")

    def at(self, digest: str) -> str:
        """``host/repository@digest``: the image that exact digest names."""
        return f"{self.repository_path}@{digest}"

    @property
    def manifest_reference(self) -> str:
        """What to ask the registry's manifest API for: the digest if the name has one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG


def digest_in_pull_status(item: object) -> str | None:
    """The digest a pull reports (``{"status": "Digest: sha256:..."}``), or None for other lines."""
    if isinstance(item, dict):
        status = item.get("status")
        if isinstance(status, str) and status.startswith("Digest: ") and is_digest(status[8:].strip()):
            return status[8:].strip()
    return None


def repo_digests_for(inspect: dict[str, object], name: ImageName) -> list[str]:
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


def digest_in_image_id(image_id: object, name: ImageName) -> str | None:
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
