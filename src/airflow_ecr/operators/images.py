"""EcrPinImagesOperator: resolve a DAG run's image tags to digests once, for every ECR task of the run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_ecr._compat import BaseOperator
from airflow_ecr.exceptions import EcrConfigurationError, EcrPullError
from airflow_ecr.hooks.docker import EcrDockerHook
from airflow_ecr.hooks.pull_errors import first_pull_error
from airflow_ecr.images.pins import Pin, pins_as_xcom
from airflow_ecr.images.pull_through import Rewrite, through_cache
from airflow_ecr.registry import ImageReference
from airflow_ecr.settings import DEFAULT_AWS_CONN_ID, ecr_settings

if TYPE_CHECKING:
    from airflow_ecr._compat import Context


class EcrPinImagesOperator(BaseOperator):
    """
    Resolve each image's tag to the digest it points to now, and return the pins.

    One manifest request per distinct image (a ``HEAD`` with the cached ECR token; no layer is
    downloaded). ECR tasks given the result as ``pinned_images`` pull and run exactly that digest,
    even if the tag is pushed again while the DAG run goes on:

    .. code-block:: python

        pin = EcrPinImagesOperator(task_id="pin_images", images=[TRAIN, SCORE])
        train = EcrDockerOperator(task_id="train", image=TRAIN, pinned_images=pin.output)
        score = EcrDockerOperator(task_id="score", image=SCORE, pinned_images=pin.output)

    A tag that does not exist fails this task, before any container runs. An image of a registry
    named in ``[ecr] pull_through_cache`` is resolved (and pinned) by its name in the ECR
    pull-through cache, the name the ECR tasks then pull it by.

    :param images: the images (by tag) the run's ECR tasks use.
    :param aws_conn_id: the Airflow AWS connection tokens are fetched with (None: boto3's chain).
    :param docker_conn_id: an ``ecr_docker`` connection (its settings and alias declaration), if any.
    :param fallback_regions: replica regions asked, in order, when an image's region fails (as the
        ECR operators' argument); a replica holds the same digests.
    """

    template_fields: Sequence[str] = ("images", "aws_conn_id", "docker_conn_id", "fallback_regions")
    ui_color = "#ffe8cc"

    def __init__(
        self,
        *,
        images: Sequence[str] | str,
        aws_conn_id: str | None = DEFAULT_AWS_CONN_ID,
        docker_conn_id: str | None = None,
        fallback_regions: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.images = images
        self.aws_conn_id = aws_conn_id
        self.docker_conn_id = docker_conn_id
        self.fallback_regions = fallback_regions

    def execute(self, context: Context) -> dict[str, dict[str, Any]]:
        images = [self.images] if isinstance(self.images, str) else list(self.images or ())
        if not images or not all(isinstance(i, str) and i for i in images):
            raise EcrConfigurationError(f"images must be a non-empty list of image names, got {self.images!r}.")
        names: dict[ImageReference, str] = {}
        rewrites: dict[ImageReference, Rewrite] = {}
        rules = ecr_settings().pull_through_rules
        for image in images:
            rewrite = through_cache(image, rules)
            name = ImageReference.parse(rewrite.image if rewrite else image)
            if name.digest is not None:
                raise EcrConfigurationError(f"Image {image} already names a digest: list it by tag, or not at all.")
            names.setdefault(name, image)
            if rewrite is not None and name not in rewrites:
                rewrites[name] = rewrite
                self.log.info("%s", rewrite.log_line("Resolving"))
        hooks: dict[str, EcrDockerHook] = {}  # one per registry: its token is shared by its images
        pins: dict[ImageReference, Pin] = {}
        for name, image in names.items():
            if name.host not in hooks:
                hooks[name.host] = EcrDockerHook(
                    image=name.name_on_host(name.host),
                    aws_conn_id=self.aws_conn_id,
                    docker_conn_id=self.docker_conn_id,
                    fallback_regions=self.fallback_regions,
                )
            try:
                _, manifest = hooks[name.host].resolve_in_any_region(name.name_on_host(name.host))
            except EcrPullError as err:
                if name not in rewrites:
                    raise
                raise first_pull_error(err, rewrites[name]) from None
            pins[name] = Pin.of(manifest)
            self.log.info("Pinned %s to %s", image, name.name_by_digest(pins[name].digest))
        return pins_as_xcom(pins, names)
