"""
What the image policy asks of AWS and of the registry, with the hook's AWS identity and tokens:
the :class:`~airflow_ecr.trust.check.PolicyIO` of :meth:`EcrDockerHook.check_image_policy
<airflow_ecr.hooks.docker.EcrDockerHook.check_image_policy>`.

Scan findings come from the image's registry account and region; a KMS key and AWS Signer's
revocation answer from the region their ARN names (else the registry's). Each AWS refusal becomes
one sentence naming the IAM action to grant.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from airflow_ecr.registry import EcrRegistry, ImageReference
    from airflow_ecr.tokens.sources import EcrTokenSource
    from airflow_ecr.trust.notation import RevocationAnswer, RevocationQuery
    from airflow_ecr.trust.referrers import SignatureArtifact
    from airflow_ecr.trust.scan import ScanReport

T = TypeVar("T")


class HookPolicyIO:
    """
    The policy's requests, made as the hook's AWS identity, to the registry with its cached token.

    :param source: the hook's token source (its AWS connection), whose boto3 session makes the clients.
    :param registry: the image's registry (its account and region).
    :param registry_auth: the registry's docker auth config for a host (the hook's token cache).
    """

    def __init__(
        self, source: EcrTokenSource, registry: EcrRegistry, registry_auth: Callable[[str], dict[str, str]]
    ) -> None:
        self._source = source
        self._registry = registry
        self._registry_auth = registry_auth
        self.requests = 0  # AWS and registry requests made: the cost a benchmark reports

    def scan_report(self, name: ImageReference, digest: str, wait_seconds: float) -> ScanReport:
        from airflow_ecr.trust.scan import fetch_scan

        client = self._source.client("ecr", self._registry.region, fips=self._registry.fips)
        report, requests = fetch_scan(client, self._registry.registry_id, name.repository, digest, wait_seconds)
        self.requests += requests
        return report

    def signatures(self, name: ImageReference, digest: str, artifact_types: Collection[str]) -> list[SignatureArtifact]:
        import requests

        from airflow_ecr.trust.referrers import signatures_of

        with requests.Session() as session:
            found = signatures_of(session, name, digest, self._registry_auth(name.host), artifact_types)
        self.requests += found.requests
        return list(found)

    def kms_public_key(self, key_id: str) -> bytes:
        client = self._source.client("kms", region_of(key_id) or self._registry.region)
        answer = self._call("kms:GetPublicKey", key_id, "the key", lambda: client.get_public_key(KeyId=key_id))
        return bytes(answer["PublicKey"])

    def revocation(self, query: RevocationQuery) -> RevocationAnswer:
        from airflow_ecr.trust.notation import RevocationAnswer

        client = self._source.client("signer", region_of(query.profile_version_arn) or self._registry.region)
        answer = self._call(
            "signer:GetRevocationStatus",
            query.profile_version_arn,
            "*",
            lambda: client.get_revocation_status(
                signatureTimestamp=query.signing_time,
                platformId=query.platform_id,
                profileVersionArn=query.profile_version_arn,
                jobArn=query.job_arn,
                certificateHashes=list(query.certificate_hashes),
            ),
        )
        return RevocationAnswer(tuple(answer.get("revokedEntities") or ()))

    def _call(self, action: str, resource: str, on: str, call: Callable[[], Any]) -> Any:
        from airflow_ecr.tokens.aws_errors import classify, policy_call_error

        self.requests += 1
        try:
            return call()
        except Exception as err:
            failure = classify(err)
            if failure.kind == "unexpected":
                raise
            raise policy_call_error(failure, action, resource, "the image policy's signature rule", on) from None


def region_of(arn: str) -> str | None:
    """The region an ARN names (``arn:aws:kms:eu-west-1:…``), or None for a key id, alias or URI."""
    parts = arn.split(":")
    return parts[3] or None if arn.startswith("arn:") and len(parts) > 4 else None
