"""
The registry's manifest API, asked directly: what digest a tag points to now, without a pull.

One ``HEAD /v2/<repository>/manifests/<tag>`` with the cached ECR token answers the digest (ECR sends
``Docker-Content-Digest``). A registry that answers ``HEAD`` otherwise (405, 501, no digest header:
some pull-through caches and proxies) is asked with a ``GET`` of the manifest instead, whose body is
hashed; a layer or config blob is never downloaded. For a multi-arch image (an OCI index or Docker
manifest list) the index itself is read once more, by digest, for its platform entries.

Requests go through ``requests`` with the environment's settings (``HTTPS_PROXY``, ``NO_PROXY``,
``REQUESTS_CA_BUNDLE``), never follow a redirect (the token is in the ``Authorization`` header),
and only ever go to the image's own registry host, which the caller has already checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_ecr.exceptions import EcrImageNotFoundError, EcrPullError, EcrRegistryUnavailableError
from airflow_ecr.images.reference import is_digest
from airflow_ecr.registry import ImageReference

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
TIMEOUT = 30.0


@dataclass(frozen=True)
class Manifest:
    """
    What a tag (or digest) names in the registry.

    :param digest: the manifest's digest (an index's, for a multi-arch image).
    :param media_type: its media type.
    :param platforms: for an index, ``os/architecture[/variant]`` -> that platform's manifest digest.
    :param requests: how many registry requests it took.
    """

    digest: str
    media_type: str
    platforms: dict[str, str] = field(default_factory=dict)
    requests: int = 1

    def platform_digest(self, platform: str | None) -> str | None:
        """The digest that runs on ``platform``: the manifest's own unless it is an index."""
        if self.media_type not in INDEX_TYPES:
            return self.digest
        return self.platforms.get(platform or "")


class RegistryRejected(Exception):
    """The registry answered 401: the caller refetches the token once and asks again."""


def fetch_manifest(session: Any, name: ImageReference, auth: Mapping[str, str], timeout: float = TIMEOUT) -> Manifest:
    """
    The manifest ``name`` points to now, with at most one manifest request (two for an index).

    :param session: a ``requests.Session``.
    :param name: the image (its tag, or its digest).
    :param auth: the docker auth config for its registry (``username``, ``password``).
    :raises RegistryRejected: on 401.
    :raises EcrImageNotFoundError: the repository, tag or digest does not exist.
    :raises EcrPullError: the identity may not read it (403).
    :raises EcrRegistryUnavailableError: unreachable, 5xx, or an answer no registry gives.
    """
    url = f"https://{name.host}/v2/{name.repository}/manifests/{name.manifest_reference}"
    headers = {"Accept": ACCEPT, "Authorization": basic_authorization(auth)}
    response = _send(session, "HEAD", url, headers, name, timeout)
    digest = response.headers.get("Docker-Content-Digest", "")
    media_type = _media_type(response)
    if response.status_code == 200 and is_digest(digest) and media_type:
        if media_type not in INDEX_TYPES:
            return Manifest(digest, media_type)
        index_url = f"https://{name.host}/v2/{name.repository}/manifests/{digest}"
        body, _ = _get(session, index_url, headers, name, timeout, expected=digest)
        return Manifest(digest, media_type, _platforms(body, name), requests=2)
    # 405, 501, a 200 without a digest: this registry does not answer HEAD as ECR does.
    if response.status_code not in (200, 405, 501):
        _raise_for_status(response, name)
    body, digest = _get(session, url, headers, name, timeout, expected=None)
    document = _json(body, name)
    media_type = str(document.get("mediaType") or media_type or DOCKER_MANIFEST)
    platforms = _platforms(body, name) if media_type in INDEX_TYPES else {}
    return Manifest(digest, media_type, platforms, requests=2)


def basic_authorization(auth: Mapping[str, str]) -> str:
    """The ``Authorization`` header ECR's registry takes: Basic, from a docker auth config.

    :param auth: the registry's docker auth config (``username``, ``password``).
    """
    credentials = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
    return f"Basic {credentials}"


def _send(session: Any, method: str, url: str, headers: dict[str, str], name: ImageReference, timeout: float) -> Any:
    import requests

    try:
        # No redirects: a redirect would carry the Authorization header elsewhere.
        return session.request(method, url, headers=headers, allow_redirects=False, timeout=timeout)
    except requests.RequestException as err:
        raise EcrRegistryUnavailableError(
            f"Registry {name.host} could not be reached to read the manifest of {name.tagged}: "
            f"{type(err).__name__}; check the network path (and HTTPS_PROXY, if one is needed) to it."
        ) from None


def _get(
    session: Any, url: str, headers: dict[str, str], name: ImageReference, timeout: float, expected: str | None
) -> tuple[bytes, str]:
    response = _send(session, "GET", url, headers, name, timeout)
    if response.status_code != 200:
        _raise_for_status(response, name, fallback=True)
    body = response.content
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    claimed = response.headers.get("Docker-Content-Digest") or expected
    if claimed and claimed != digest:
        raise EcrRegistryUnavailableError(
            f"Registry {name.host} answered a manifest of {name.tagged} whose content does not match "
            f"its digest {claimed}; do not trust this registry's answer."
        )
    return body, digest


def _raise_for_status(response: Any, name: ImageReference, fallback: bool = False) -> None:
    status = response.status_code
    what = (
        f"{name.repository_path}:{name.manifest_reference}" if name.digest is None else name.name_by_digest(name.digest)
    )
    if status == 401:
        raise RegistryRejected(name.host)
    if status == 403:
        raise EcrPullError(
            f"Registry {name.host} refused to show the manifest of {what}: give the AWS identity "
            f"ecr:BatchGetImage on this repository (and its repository policy, for cross-account pulls)."
        )
    if status == 404:
        raise EcrImageNotFoundError(
            f"Image {what} does not exist in {name.host}: check the repository name and tag "
            "(or whether the image was deleted)."
        )
    if status >= 500 or fallback or 300 <= status < 400:
        answer = f"HTTP {status}" + (" (a redirect, not followed)" if 300 <= status < 400 else "")
        raise EcrRegistryUnavailableError(
            f"Registry {name.host} answered {answer} for the manifest of {what}; retry later, "
            "or check what sits between this worker and the registry."
        )


def _media_type(response: Any) -> str:
    return str(response.headers.get("Content-Type", "")).split(";", 1)[0].strip()


def _json(body: bytes, name: ImageReference) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise EcrRegistryUnavailableError(
            f"Registry {name.host} answered a manifest of {name.tagged} that is not JSON."
        )
    return document


def _platforms(body: bytes, name: ImageReference) -> dict[str, str]:
    platforms: dict[str, str] = {}
    for entry in _json(body, name).get("manifests") or []:
        platform = entry.get("platform") or {}
        key = "/".join(str(p) for p in (platform.get("os"), platform.get("architecture"), platform.get("variant")) if p)
        if key and is_digest(entry.get("digest")) and key != "unknown/unknown":  # attestations
            platforms.setdefault(key, entry["digest"])
    return platforms
