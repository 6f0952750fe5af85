"""
The image an ECR task ran, as an OpenLineage run facet (``ecr_image``).

Called only by the ECR operators' ``get_openlineage_facets_on_complete``, which only the
OpenLineage provider calls: OpenLineage is imported there, on first use, so this module imports
(and the package works) without that provider.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_ecr.images.record import ImageRecord

FACET_NAME = "ecr_image"
SCHEMA_URL = "https://github.com/airflow-ecr/airflow-ecr/blob/main/docs/reproducible-runs.md#lineage"


@functools.cache
def facet_class() -> type:
    """``EcrImageRunFacet``, an OpenLineage ``RunFacet`` (defined on first use, see above)."""
    import attr
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class EcrImageRunFacet(RunFacet):  # type: ignore[misc,unused-ignore]
        """The container image an ECR task ran: its name and the registry's digest."""

        image: str
        registry: str
        repository: str
        tag: str | None
        digest: str | None
        reference: str | None
        region: str
        platformDigest: str | None  # OpenLineage facet fields are camelCase
        # The image policy's verdict on the digest (scan summary, signature outcome), when one applied.
        policy: dict[str, Any] | None = None

        @staticmethod
        def _get_schema() -> str:
            return SCHEMA_URL

    return EcrImageRunFacet


def image_lineage(record: ImageRecord | None) -> Any:
    """An ``OperatorLineage`` whose run facets hold the image record (none when no image ran).

    :param record: what the task ran, or None (it failed before the container started).
    """
    from airflow.providers.openlineage.extractors import OperatorLineage

    if record is None:
        return OperatorLineage()
    value = record.as_xcom()
    facet = facet_class()(
        image=value["image"],
        registry=value["registry"],
        repository=value["repository"],
        tag=value["tag"],
        digest=value["digest"],
        reference=value["reference"],
        region=value["region"],
        platformDigest=value["platform_digest"],
        policy=value["policy"],
    )
    return OperatorLineage(run_facets={FACET_NAME: facet})
