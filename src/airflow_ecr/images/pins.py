"""
Pins: the digests a DAG run's tags were resolved to, shared by its ECR tasks. Pure, no I/O.

The pin task (:class:`~airflow_ecr.operators.images.EcrPinImagesOperator`) returns
:func:`pins_as_xcom` of what it resolved; each ECR task given that value as ``pinned_images``
looks its own image up with :func:`pin_for` and pulls and runs ``<registry>/<repository>@<digest>``.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_ecr.exceptions import EcrConfigurationError, EcrImageNotFoundError
from airflow_ecr.images.manifests import INDEX_TYPES, Manifest
from airflow_ecr.images.reference import is_digest
from airflow_ecr.registry import ImageReference


@dataclass(frozen=True)
class Pin:
    """
    The digest one ``repository:tag`` was resolved to, and when.

    :param digest: the digest the tag pointed to (an index's, for a multi-arch image).
    :param media_type: the manifest's media type.
    :param platforms: for an index, each platform's manifest digest.
    :param resolved_at: when the registry was asked (ISO 8601, UTC).
    """

    digest: str
    media_type: str
    resolved_at: str
    platforms: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, manifest: Manifest, resolved_at: str | None = None) -> Pin:
        """The pin of a manifest the registry answered (at ``resolved_at``, default now)."""
        if resolved_at is None:
            now = datetime.datetime.now(datetime.timezone.utc)
            resolved_at = now.isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(manifest.digest, manifest.media_type, resolved_at, dict(manifest.platforms))

    def platform_digest(self, platform: str | None) -> str | None:
        """The digest that runs on ``platform``: the pinned one unless it is an index."""
        return Manifest(self.digest, self.media_type, self.platforms).platform_digest(platform)

    @property
    def multi_arch(self) -> bool:
        return self.media_type in INDEX_TYPES


def pins_as_xcom(pins: Mapping[ImageReference, Pin], images: Mapping[ImageReference, str]) -> dict[str, dict[str, Any]]:
    """
    The pin task's return value: ``host/repository:tag`` -> the pin, JSON-serialisable.

    :param pins: what each image name was resolved to.
    :param images: each image name as the DAG wrote it.
    """
    return {
        name.tagged: {
            "image": images[name],
            "digest": pin.digest,
            "reference": name.name_by_digest(pin.digest),
            "media_type": pin.media_type,
            "platforms": dict(pin.platforms),
            "resolved_at": pin.resolved_at,
        }
        for name, pin in pins.items()
    }


def pin_for(pinned_images: Any, name: ImageReference, image: str) -> Pin:
    """
    The pin of ``image`` in a ``pinned_images`` value (the pin task's XCom).

    :param pinned_images: the value the task was given.
    :param name: the task's image, parsed.
    :param image: the task's image, as rendered.
    :raises EcrConfigurationError: not a pin task's value, or the image is not among its pins.
    """
    if not isinstance(pinned_images, Mapping) or not all(isinstance(v, Mapping) for v in pinned_images.values()):
        raise EcrConfigurationError(
            f"pinned_images must be the pin task's result (e.g. pinned_images=pin.output), got {pinned_images!r}."
        )
    if name.digest is not None:
        raise EcrConfigurationError(
            f"Image {image} already names a digest: drop pinned_images from this task, or name the image by tag."
        )
    entry = pinned_images.get(name.tagged)
    if entry is None:
        known = ", ".join(sorted(pinned_images)) or "none"
        raise EcrConfigurationError(
            f"Image {image} is not among the pinned images ({known}): add it to the pin task's images."
        )
    digest, resolved_at = entry.get("digest"), entry.get("resolved_at")
    if not is_digest(digest) or not isinstance(resolved_at, str):
        raise EcrConfigurationError(f"The pin of {name.tagged} is malformed ({dict(entry)!r}): re-run the pin task.")
    platforms = {str(k): str(v) for k, v in (entry.get("platforms") or {}).items() if is_digest(v)}
    return Pin(str(digest), str(entry.get("media_type") or ""), resolved_at, platforms)


def pinned_digest_gone(image: str, pin: Pin, registry: str) -> EcrImageNotFoundError:
    """
    The error of a task whose pinned digest its registry no longer has.

    :param image: the task's image, as rendered.
    :param pin: the pin it ran by.
    :param registry: the registry host that said the digest is not there.
    """
    return EcrImageNotFoundError(
        f"Image {image} was pinned to {pin.digest} (resolved at {pin.resolved_at}), which no longer exists in "
        f"{registry}: it was deleted (or expired by a lifecycle policy) since; re-run the DAG to pin the tag anew."
    )
