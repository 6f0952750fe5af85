"""
The error a failed pull becomes, for each kind of answer (read by
:func:`~airflow_ecr.hooks.daemon_messages.classify_pull_error`), and what a first pull through a
pull-through cache rule needs. Pure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_ecr.exceptions import EcrImageNotFoundError, EcrPullError, EcrRegistryUnavailableError
from airflow_ecr.tokens.aws_errors import pull_actions

if TYPE_CHECKING:
    from airflow_ecr.hooks.daemon_messages import PullErrorKind
    from airflow_ecr.images.pull_through import Rewrite

# What the first pull of an image through an ECR pull-through cache rule needs besides the pull
# permissions: it creates the repository and imports the image from the upstream registry. Without
# them ECR answers "not found" (or "denied"), which says nothing of the rule.
FIRST_PULL_ACTIONS = ("ecr:BatchImportUpstreamImage", "ecr:CreateRepository")


def pull_error(image: str, host: str, message: str, kind: PullErrorKind, retried: bool = False) -> EcrPullError:
    """A pull failure turned into an error that says what to check."""
    if kind == "auth":
        what = "rejected a freshly fetched token too" if retried else "rejected the credentials"
        return EcrPullError(
            f"Registry {host} {what} for {image}: check that the AWS identity may "
            f"{pull_actions()} on this repository "
            f"(its repository policy too, for cross-account pulls). Registry said: {message}"
        )
    if kind == "not_found":
        return EcrImageNotFoundError(
            f"Image {image} was not found in {host}: check the repository name and tag "
            f"(or digest). Registry said: {message}"
        )
    if kind == "unavailable":
        return EcrRegistryUnavailableError(f"Registry {host} could not serve {image}: {message}")
    return EcrPullError(f"Pulling {image} from {host} failed: {message}")


def first_pull_error(err: EcrPullError, rewrite: Rewrite) -> EcrPullError:
    """
    ``err``, a failed pull (or manifest request) of an image pulled through a pull-through cache
    rule, saying what the first pull through the rule needs; an unreachable registry is left as is.

    :param err: the pull's error (of the image's ECR name).
    :param rewrite: how the image was rewritten (:func:`airflow_ecr.images.pull_through.through_cache`).
    """
    if isinstance(err, EcrRegistryUnavailableError):
        return err
    rule = rewrite.rule
    return type(err)(
        f"Image {rewrite.requested} is pulled through the ECR pull-through cache as {rewrite.image} "
        f"([ecr] pull_through_cache), which {rule.registry} refused or does not have: the first pull of an image "
        f"through the cache rule '{rule.prefix}' creates its repository and imports it from {rule.upstream}, which "
        f"needs {' and '.join(FIRST_PULL_ACTIONS)} for the task's AWS identity besides {pull_actions()}; "
        f"check too that {rule.registry} has a pull-through cache rule with the prefix "
        f"'{rule.prefix}' for {rule.upstream} and that {rule.upstream} has the image (the pull said: {err})",
        failure=err.failure,
    )
