"""
The record every ECR task pushes to XCom (key ``ecr_image``): which image, by digest, it ran. Pure.

The digest comes from what the task already has, so recording costs no registry request: the pin or
the resolved manifest when the task pulled by digest, else the pull's own ``Digest:`` line, else
the daemon's ``RepoDigests`` for the image's registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow_ecr.images.pins import Pin
from airflow_ecr.images.reference import platform_of, repo_digests_for
from airflow_ecr.registry import ImageReference

XCOM_KEY = "ecr_image"


@dataclass(frozen=True)
class ImageRecord:
    """
    What one ECR task ran.

    :param image: the image as rendered (its pull-through cache name, when a rule rewrote it).
    :param name: ``image``, parsed.
    :param region: the registry's region.
    :param digest: the registry's manifest digest the tag pointed to (an index's for a multi-arch
        image), or None when the daemon cannot tell (an image built or tagged locally).
    :param pulled: whether this task pulled the image (None: a swarm node pulls, not the task).
    :param platform: the platform of the image that ran (``os/architecture[/variant]``), if known.
    :param platform_digest: the platform's manifest digest, if known (equal to ``digest`` unless
        the image is multi-arch).
    :param image_id: the local image id (its config digest), if known.
    :param pin: the pin (or the task's own resolution) the task pulled by, if any.
    :param note: why ``digest`` is None, or other news for the task log.
    :param requested: the image as the task named it, when ``[ecr] pull_through_cache`` rewrote it
        to ``image`` (its name in the ECR pull-through cache).
    :param policy: the image policy's verdict on the digest (``Verdict.as_record()``: the scan
        summary, the signature outcome), when a policy applied.
    """

    image: str
    name: ImageReference
    region: str
    digest: str | None
    pulled: bool | None
    platform: str | None = None
    platform_digest: str | None = None
    image_id: str | None = None
    pin: Pin | None = None
    note: str | None = None
    requested: str | None = None
    policy: dict[str, Any] | None = None

    @property
    def reference(self) -> str | None:
        """``<registry>/<repository>@<digest>``, or None without a digest."""
        return self.name.name_by_digest(self.digest) if self.digest else None

    def as_xcom(self) -> dict[str, Any]:
        """The XCom value (JSON-serialisable)."""
        return {
            "image": self.image,
            "registry": self.name.host,
            "repository": self.name.repository,
            "tag": self.name.tag,
            "digest": self.digest,
            "reference": self.reference,
            "region": self.region,
            "pulled": self.pulled,
            "platform": self.platform,
            "platform_digest": self.platform_digest,
            "image_id": self.image_id,
            "pinned": self.pin is not None,
            "resolved_at": self.pin.resolved_at if self.pin else None,
            "requested": self.requested or self.image,
            "policy": self.policy,
        }

    @property
    def log_line(self) -> str:
        """The one line the task log gets."""
        return f"Running {self.reference or self.image + ' (no digest known)'} ({self.image})"


def build_record(
    image: str,
    region: str,
    pulled: bool | None,
    pull_digest: str | None,
    inspect: dict[str, Any] | None,
    pin: Pin | None,
    name: ImageReference | None = None,
    requested: str | None = None,
    policy: dict[str, Any] | None = None,
) -> ImageRecord:
    """
    The record of a task that ran ``image``.

    :param image: the image as rendered (by tag, or by digest).
    :param region: the registry's region.
    :param pulled: whether the task pulled it (None: a swarm node did).
    :param pull_digest: the digest the pull reported, if it pulled.
    :param inspect: the daemon's inspect answer for the image that ran (None: not local, swarm).
    :param pin: the pin the task pulled by, if any.
    :param name: the image as pulled, when not ``image`` itself (a replica in a fallback region).
    :param requested: the image as the task named it, when a pull-through cache rule rewrote it to ``image``.
    :param policy: the image policy's verdict on the digest that runs (``Verdict.as_record()``), if any.
    """
    name = name or ImageReference.parse(image)
    inspect = inspect or {}
    platform = platform_of(inspect)
    image_id = inspect.get("Id") if isinstance(inspect.get("Id"), str) else None
    note = None
    if pin is not None:
        digest: str | None = pin.digest
        platform_digest = pin.platform_digest(platform)
    else:
        digest = pull_digest or name.digest
        if digest is None:
            found = repo_digests_for(inspect, name)
            if len(found) == 1:
                digest = found[0]
            elif pulled:
                note = f"The pull of {image} reported no digest, nor does the daemon list one: no digest is recorded."
            elif not found:
                note = (
                    f"Image {image} is local but was never pulled from {name.host} (built or tagged "
                    "here): no digest is recorded."
                )
            else:
                note = (
                    f"Image {image} was pulled from {name.host} under several digests ({', '.join(found)}): "
                    "no digest is recorded; pass resolve_digest=True to pull and record one."
                )
        # Without the manifest (a pull by tag reports only the digest) an index cannot be told from
        # a single manifest; a digest that names the image itself can.
        platform_digest = None
    return ImageRecord(
        image, name, region, digest, pulled, platform, platform_digest, image_id, pin, note, requested, policy
    )
