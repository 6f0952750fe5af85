"""
The signatures attached to a digest in its registry: found, fetched and checked against their digests.

Discovery follows the OCI distribution spec 1.1: ``GET /v2/<repository>/referrers/<digest>`` (an
OCI index of descriptors, paged with ``Link: <...>; rel="next"``); a registry without that API
answers 404, and then the referrers tag schema is read instead: the tag ``sha256-<hex>`` holding an
OCI index of the same descriptors, which signing tools keep up to date. cosign's own tag,
``sha256-<hex>.sig`` (a manifest whose layers are simple-signing payloads), is read too whenever
cosign signatures are wanted, because that is where cosign writes them unless told otherwise.

For each signature the manifest and its layer blobs are fetched by digest, and every one's sha256 is
checked against the descriptor that named it before it is used: the registry is not trusted, only
the digests are. Requests follow :mod:`airflow_ecr.images.manifests`: Basic auth from the docker
auth config, timeouts, no redirect followed with the token, and only the image's own host. The one
exception is a blob: ECR answers a layer with a redirect to a pre-signed S3 URL, which is followed
once *without* the Authorization header (the URL carries its own signature), and whatever comes back
must still match the digest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from airflow_ecr.exceptions import EcrConfigurationError, EcrPullError, EcrRegistryUnavailableError
from airflow_ecr.images.manifests import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, TIMEOUT, basic_authorization
from airflow_ecr.images.reference import is_digest
from airflow_ecr.registry import ImageReference
from airflow_ecr.trust.cosign import ARTIFACT_TYPE as COSIGN_ARTIFACT_TYPE
from airflow_ecr.trust.cosign import SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE
from airflow_ecr.trust.envelopes import ENVELOPE_MEDIA_TYPES as NOTATION_ENVELOPE_TYPES
from airflow_ecr.trust.envelopes import NOTATION_ARTIFACT_TYPE

REFERRERS_API = "referrers-api"
TAG_SCHEMA = "tag-schema"
COSIGN_TAG = "cosign-tag"
# Signature manifests and envelopes are a few kilobytes; the OCI spec caps manifests at 4 MiB.
MAX_SIZE = 4 * 1024 * 1024
MAX_PAGES = 50
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class SignatureArtifact:
    """
    One signature found for a digest, its bytes checked against their digests.

    :param format: ``notation`` or ``cosign``.
    :param manifest_digest: the signature manifest's digest.
    :param media_type: the envelope's media type (Notation: ``application/jose+json`` or
        ``application/cose``; cosign: the simple-signing media type).
    :param blob: the Notation envelope, or the cosign simple-signing payload.
    :param signature_b64: cosign: the layer's signature annotation; None for Notation.
    :param source: where it was found: ``referrers-api``, ``tag-schema`` or ``cosign-tag``.
    """

    format: str
    manifest_digest: str
    media_type: str
    blob: bytes
    signature_b64: str | None
    source: str


class Signatures(list[SignatureArtifact]):
    """
    The signatures :func:`signatures_of` found, and what finding them cost.

    :ivar requests: how many registry requests it took.
    :ivar referrers_api: whether the registry answered the referrers API (False: the tag schema was read).
    """

    requests: int = 0
    referrers_api: bool = False


def tag_schema_tag(digest: str) -> str:
    """The OCI referrers tag schema's tag for ``digest``: ``sha256-<hex>``."""
    return digest.replace(":", "-", 1)


def cosign_signature_tag(digest: str) -> str:
    """cosign's signature tag for ``digest``: ``sha256-<hex>.sig``."""
    return tag_schema_tag(digest) + ".sig"


def signatures_of(
    session: Any,
    name: ImageReference,
    digest: str,
    auth: Mapping[str, str],
    artifact_types: Collection[str],
    timeout: float = TIMEOUT,
) -> Signatures:
    """
    The signatures attached to ``digest`` whose artifact type is wanted, fetched and digest-checked.

    :param session: a ``requests.Session``.
    :param name: the image (its host and repository are used).
    :param digest: the digest that will run (``sha256:...``).
    :param auth: the docker auth config for its registry (``username``, ``password``).
    :param artifact_types: the wanted artifact types: :data:`NOTATION_ARTIFACT_TYPE`,
        :data:`~airflow_ecr.trust.cosign.ARTIFACT_TYPE` (which also reads cosign's ``.sig`` tag).
    :param timeout: seconds per request.
    :raises EcrPullError: the registry refused (401, 403): the identity lacks ``ecr:BatchGetImage``
        or ``ecr:GetDownloadUrlForLayer``.
    :raises EcrRegistryUnavailableError: unreachable, 5xx, or an answer that does not match its digest.
    """
    if not is_digest(digest):
        raise EcrConfigurationError(f"{digest!r} is not a sha256 digest: signatures are looked up by sha256:<64 hex>.")
    registry = _Registry(session, name, auth, timeout)
    found = Signatures()
    wanted = frozenset(artifact_types)
    descriptors, found.referrers_api = registry.referrers(digest)
    source = REFERRERS_API if found.referrers_api else TAG_SCHEMA
    for descriptor in descriptors:
        listed = descriptor.get("artifactType")
        if listed is not None and listed not in wanted:
            continue  # the descriptor says what it is: no need to fetch it
        found.extend(registry.signature_manifest(descriptor, digest, wanted, source))
    if COSIGN_ARTIFACT_TYPE in wanted:
        found.extend(registry.cosign_tag(digest))
    found.requests = registry.requests
    return found


class _Registry:
    """One image's registry, as signature discovery reads it; counts its requests."""

    def __init__(self, session: Any, name: ImageReference, auth: Mapping[str, str], timeout: float) -> None:
        self.session = session
        self.name = name
        self.timeout = timeout
        self.authorization = basic_authorization(auth)
        self.base = f"https://{name.host}/v2/{name.repository}"
        self.requests = 0

    # -- discovery -------------------------------------------------------------------------------
    def referrers(self, digest: str) -> tuple[list[dict[str, Any]], bool]:
        """The descriptors referring to ``digest``, and whether the referrers API answered them."""
        url: str | None = f"{self.base}/referrers/{digest}"
        descriptors: list[dict[str, Any]] = []
        seen: set[str] = set()
        while url and len(seen) < MAX_PAGES:
            seen.add(url)
            response = self._fetch(url, OCI_INDEX, "the signatures")
            if response.status_code == 404 and not descriptors:
                return self._tag_schema(digest), False
            self._expect(response, "the signatures", "ecr:BatchGetImage")
            descriptors += _descriptors(_document(response.content, self._untrusted("signature list")))
            url = self._next_page(response, url)
            if url in seen:
                break
        return descriptors, True

    def _tag_schema(self, digest: str) -> list[dict[str, Any]]:
        response = self._fetch(f"{self.base}/manifests/{tag_schema_tag(digest)}", OCI_INDEX, "the signatures")
        if response.status_code == 404:
            return []
        self._expect(response, "the signatures", "ecr:BatchGetImage")
        body = response.content
        claimed = response.headers.get("Docker-Content-Digest")
        if claimed and claimed != _sha256(body):
            raise self._untrusted(f"signature index {tag_schema_tag(digest)}")
        return _descriptors(_document(body, self._untrusted("signature index")))

    def _next_page(self, response: Any, url: str) -> str | None:
        link = (getattr(response, "links", None) or {}).get("next", {}).get("url")
        if not link:
            return None
        target = urljoin(url, link)
        parts = urlsplit(target)
        if parts.scheme != "https" or parts.netloc != self.name.host:
            raise EcrRegistryUnavailableError(
                f"Registry {self.name.host} paged the signatures of {self.name.repository_path} to another "
                f"host ({parts.netloc or target}); this provider only asks the image's own registry."
            )
        return target

    # -- signature manifests ---------------------------------------------------------------------
    def signature_manifest(
        self, descriptor: Mapping[str, Any], digest: str, wanted: frozenset[str], source: str
    ) -> list[SignatureArtifact]:
        """The signatures one listed manifest holds, if it is a wanted signature of ``digest``."""
        manifest_digest = descriptor.get("digest")
        if not is_digest(manifest_digest):
            return []
        manifest = self._manifest(str(manifest_digest), descriptor.get("size"))
        if manifest is None or (manifest.get("subject") or {}).get("digest") != digest:
            return []  # deleted since it was listed, or not a signature of this digest
        # Before OCI 1.1, the config's media type was the artifact type (early Notation).
        artifact_type = manifest.get("artifactType") or (manifest.get("config") or {}).get("mediaType")
        if artifact_type not in wanted:
            return []
        layers = [layer for layer in manifest.get("layers") or [] if isinstance(layer, dict)]
        if artifact_type == NOTATION_ARTIFACT_TYPE:
            envelopes = [layer for layer in layers if layer.get("mediaType") in NOTATION_ENVELOPE_TYPES]
            if len(layers) != 1 or len(envelopes) != 1:
                return []  # Notation puts exactly one envelope in a signature manifest
            blob = self._blob(envelopes[0])
            if blob is None:
                return []
            return [SignatureArtifact("notation", str(manifest_digest), envelopes[0]["mediaType"], blob, None, source)]
        if artifact_type == COSIGN_ARTIFACT_TYPE:
            return self._cosign_layers(layers, str(manifest_digest), source)
        return []

    def cosign_tag(self, digest: str) -> list[SignatureArtifact]:
        """The signatures under cosign's ``sha256-<hex>.sig`` tag."""
        tag = cosign_signature_tag(digest)
        response = self._fetch(f"{self.base}/manifests/{tag}", f"{OCI_MANIFEST}, {DOCKER_MANIFEST}", "the signatures")
        if response.status_code == 404:
            return []
        self._expect(response, "the signatures", "ecr:BatchGetImage")
        body = response.content
        manifest_digest = _sha256(body)
        claimed = response.headers.get("Docker-Content-Digest")
        if claimed and claimed != manifest_digest:
            raise self._untrusted(f"signature manifest {tag}")
        manifest = _document(body, self._untrusted(f"signature manifest {tag}"))
        layers = [layer for layer in manifest.get("layers") or [] if isinstance(layer, dict)]
        return self._cosign_layers(layers, manifest_digest, COSIGN_TAG)

    def _cosign_layers(
        self, layers: Iterable[dict[str, Any]], manifest_digest: str, source: str
    ) -> list[SignatureArtifact]:
        found = []
        for layer in layers:
            signature = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
            if layer.get("mediaType") != SIMPLE_SIGNING_MEDIA_TYPE or not isinstance(signature, str):
                continue  # attestations, SBOMs and other attachments share the tag
            blob = self._blob(layer)
            if blob is not None:
                found.append(
                    SignatureArtifact("cosign", manifest_digest, SIMPLE_SIGNING_MEDIA_TYPE, blob, signature, source)
                )
        return found

    # -- content by digest -----------------------------------------------------------------------
    def _manifest(self, digest: str, size: object) -> dict[str, Any] | None:
        response = self._fetch(
            f"{self.base}/manifests/{digest}", f"{OCI_MANIFEST}, {DOCKER_MANIFEST}", "the signatures"
        )
        if response.status_code == 404:
            return None
        self._expect(response, "the signatures", "ecr:BatchGetImage")
        body = self._checked(response.content, digest, size, "signature manifest")
        return _document(body, self._untrusted(f"signature manifest {digest}"))

    def _blob(self, descriptor: Mapping[str, Any]) -> bytes | None:
        digest, size = descriptor.get("digest"), descriptor.get("size")
        if not is_digest(digest) or not isinstance(size, int) or not 0 <= size <= MAX_SIZE:
            return None  # not a descriptor this provider will download
        response = self._fetch(f"{self.base}/blobs/{digest}", "*/*", "a signature")
        if response.status_code in _REDIRECTS and response.headers.get("Location"):
            response = self._follow(urljoin(response.url or self.base, response.headers["Location"]))
        if response.status_code == 404:
            return None
        self._expect(response, "a signature", "ecr:GetDownloadUrlForLayer")
        return self._checked(response.content, str(digest), size, "signature blob")

    def _follow(self, location: str) -> Any:
        if urlsplit(location).scheme != "https":
            raise EcrRegistryUnavailableError(
                f"Registry {self.name.host} redirected a signature of {self.name.repository_path} to a URL that "
                "is not https; check what sits between this worker and the registry."
            )
        # The pre-signed URL authorises itself: the registry token is never sent anywhere else.
        return self._send(location, {"Accept": "*/*"}, "a signature")

    def _checked(self, body: bytes, digest: str, size: object, what: str) -> bytes:
        if _sha256(body) != digest or (isinstance(size, int) and len(body) != size):
            raise self._untrusted(f"{what} {digest}")
        return body

    # -- HTTP ------------------------------------------------------------------------------------
    def _fetch(self, url: str, accept: str, what: str) -> Any:
        return self._send(url, {"Accept": accept, "Authorization": self.authorization}, what)

    def _send(self, url: str, headers: dict[str, str], what: str) -> Any:
        import requests

        self.requests += 1
        try:
            # No redirects: a redirect would carry the Authorization header elsewhere.
            return self.session.request("GET", url, headers=headers, allow_redirects=False, timeout=self.timeout)
        except requests.RequestException as err:
            raise EcrRegistryUnavailableError(
                f"Registry {self.name.host} could not be reached to read {what} of {self.name.repository_path}: "
                f"{type(err).__name__}; check the network path (and HTTPS_PROXY, if one is needed) to it."
            ) from None

    def _expect(self, response: Any, what: str, permission: str) -> None:
        status = response.status_code
        if status == 200:
            return
        if status in (401, 403):
            raise EcrPullError(
                f"Registry {self.name.host} refused to show {what} of {self.name.repository_path} (HTTP {status}): "
                f"give the AWS identity {permission} on this repository (and its repository policy, for "
                "cross-account pulls)."
            )
        answer = f"HTTP {status}" + (" (a redirect, not followed)" if 300 <= status < 400 else "")
        raise EcrRegistryUnavailableError(
            f"Registry {self.name.host} answered {answer} when asked for {what} of {self.name.repository_path}; "
            "retry later, or check what sits between this worker and the registry."
        )

    def _untrusted(self, what: str) -> EcrRegistryUnavailableError:
        return EcrRegistryUnavailableError(
            f"Registry {self.name.host} answered a {what} of {self.name.repository_path} that does not match "
            "its digest or is not valid JSON; do not trust this registry's answer."
        )


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _document(body: bytes, error: Exception) -> dict[str, Any]:
    if len(body) > MAX_SIZE:
        raise error
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise error
    return document


def _descriptors(index: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [entry for entry in index.get("manifests") or [] if isinstance(entry, dict)]
