"""
What a failed AWS call means (:func:`classify`), and how it reads: in a task (:func:`token_error`)
and in ``airflow-ecr doctor`` (:func:`sts_advice`, and the token errors again for the ECR check).

The classification is data (:class:`~airflow_ecr.aws_failure.AwsFailure`, with a ``kind``); nothing
downstream parses text.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from airflow_ecr.aws_failure import CREDENTIAL_KINDS, AwsFailure, FailureKind
from airflow_ecr.exceptions import EcrCredentialsError, EcrError, EcrServiceError
from airflow_ecr.registry import EcrRegistry

# Error codes AWS answers when the caller lacks permission.
ACCESS_DENIED_CODES = ("AccessDeniedException", "AccessDenied")
# Error codes AWS answers for credentials that are invalid or expired.
INVALID_CREDENTIAL_CODES = (
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "ExpiredToken",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "InvalidAccessKeyId",
    "AuthFailure",
)
# Error codes AWS answers when a caller exceeds its request rate.
THROTTLING_CODES = ("ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded")


def classify(err: BaseException, endpoint: str | None = None) -> AwsFailure:
    """
    What ``err``, raised by a boto3 call, means.

    :param err: the exception.
    :param endpoint: the endpoint the client talks to, for failures that do not carry it.
    """
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    name = type(err).__name__
    if isinstance(err, NoCredentialsError):
        return AwsFailure("no_credentials", name, endpoint=endpoint)
    if isinstance(err, PartialCredentialsError):
        return AwsFailure("partial_credentials", name, str(err), endpoint=endpoint)
    if isinstance(err, NoRegionError):
        return AwsFailure("no_region", name, endpoint=endpoint)
    if isinstance(err, (BotoConnectionError, HTTPClientError)):
        # Connecting failed (refused, DNS, TLS, proxy, connect timeout), or the answer never came
        # (read timeout, connection closed): the network's or the service's failure either way.
        network: FailureKind = "unreachable" if isinstance(err, BotoConnectionError) else "timeout"
        url = err.kwargs.get("endpoint_url")
        return AwsFailure(network, name, str(err), endpoint=str(url) if url else endpoint)
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code, message = str(error.get("Code", "Unknown")), str(error.get("Message", ""))
        metadata = err.response.get("ResponseMetadata", {})
        attempts = 1 + int(metadata.get("RetryAttempts", 0))
        status = metadata.get("HTTPStatusCode")
        kind: FailureKind = "service_error"
        if code in ACCESS_DENIED_CODES:
            kind = "access_denied"
        elif code in INVALID_CREDENTIAL_CODES:
            kind = "invalid_credentials"
        elif code == "InvalidParameterException":
            kind = "invalid_parameter"
        elif code in THROTTLING_CODES:
            kind = "throttled"
        return AwsFailure(kind, code, message, endpoint, attempts, int(status) if status is not None else None)
    if isinstance(err, BotoCoreError):
        return AwsFailure("client_error", name, str(err), endpoint=endpoint)
    from botocore.parsers import ResponseParserError

    if isinstance(err, ResponseParserError):
        # The endpoint answered, but not in this API's protocol: another service's endpoint (an ECR-only
        # VPC endpoint asked for STS) or a proxy's page. Its text quotes the whole body: not kept.
        return AwsFailure("unparseable", name, "the answer is not in this API's format", endpoint=endpoint)
    # Its text could hold anything, a secret included: the type only.
    return AwsFailure("unexpected", name, endpoint=endpoint)


def failure_of(err: BaseException) -> AwsFailure | None:
    """The classified AWS failure behind ``err`` (an error a token source raised), if it came from AWS."""
    return err.failure if isinstance(err, EcrError) else None


def allows_stale_token(err: BaseException) -> bool:
    """
    Whether a cached, still valid token may be served after a fetch failed with ``err``: only for
    a service or network failure of AWS (see :attr:`AwsFailure.allows_stale_token`); never for
    a denial, rejected credentials, a configuration problem, or an error that is not AWS's.

    :param err: what the token source raised.
    """
    failure = failure_of(err)
    return failure is not None and failure.allows_stale_token


# The IAM actions a pull needs on the repository, besides a token (:func:`token_action`): every
# message that names them (a task's, doctor's) takes them from here.
PULL_ACTIONS = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
# The IAM action the image policy's scan rule needs on the repository.
SCAN_ACTION = "ecr:DescribeImageScanFindings"


def token_action(registry: EcrRegistry) -> str:
    """The IAM action that hands out tokens for ``registry``."""
    return "ecr-public:GetAuthorizationToken" if registry.public else "ecr:GetAuthorizationToken"


def pull_actions(separator: str = " and ") -> str:
    """:data:`PULL_ACTIONS` as a message names them (``ecr:BatchGetImage and ecr:GetDownloadUrlForLayer``)."""
    return separator.join(PULL_ACTIONS)


def foreign_account_hedge(registry: EcrRegistry, who: str, caller_account: str | None, named_in: str) -> str:
    """
    How a fix for a refusal starts when the registry is another account's than the identity's: a
    typo in the image's account id is as likely as a missing permission, so the fix names both
    (``...; else grant ...``); '' for the identity's own account, ECR Public, or an unknown account.

    :param registry: the image's registry.
    :param who: how the message names the identity.
    :param caller_account: the identity's account, when STS told it.
    :param named_in: what names the registry (the image name, or a connection's fields).
    """
    if caller_account is None or registry.public or registry.account_id == caller_account:
        return ""
    return (
        f"the image's registry {registry.account_id} is not the account of {who} ({caller_account}): if that "
        f"is a typo, fix the account id in {named_in}; else "
    )


def token_error(
    failure: AwsFailure, source: str, registries: Sequence[EcrRegistry], configured_in: str = "the AWS connection"
) -> EcrError:
    """
    The error a task raises for a failed ``GetAuthorizationToken``: registry, identity, endpoint, what to do.

    :param failure: the classified failure.
    :param source: how the message names the AWS identity (a token source's ``description``).
    :param registries: the registries the call was for.
    :param configured_in: where the AWS settings live, for the advice.
    """
    names = ", ".join(r.host for r in registries)
    action = token_action(registries[0])
    endpoint = failure.endpoint or "?"
    kind, code, message = failure.kind, failure.code, failure.message
    if kind == "no_credentials":
        text = (
            f"No AWS credentials found for {source} (registry {names}): put credentials or a role in "
            f"{configured_in}, or give the worker an instance role or AWS_* environment variables."
        )
    elif kind == "partial_credentials":
        text = f"Incomplete AWS credentials for {source}: {message}."
    elif kind == "no_region":
        text = f"No AWS region for {source}: set region_name."
    elif kind == "unreachable":
        text = (
            f"Cannot reach the ECR API at {endpoint} for {source} (registry {names}): check the network, "
            "proxy settings and the connection's endpoint_url."
        )
    elif kind == "timeout":
        text = (
            f"The ECR API at {endpoint} did not answer {action} for registry {names} with {source} "
            f"({message}): check the network, or allow longer waits in {configured_in}, e.g. extra "
            f'{{"config_kwargs": {{"read_timeout": 120}}}}.'
        )
    elif kind == "access_denied":
        text = (
            f"The AWS identity of {source} is not allowed {action} for registry {names}: grant it "
            f"{action} (and {pull_actions(', ')} on the repositories). "
            f"AWS said: {message}"
        )
    elif kind == "invalid_credentials":
        partition = registries[0].partition
        hint = (
            f" Registry {names} is in the {partition} partition: only credentials of that partition are valid there."
            if partition != "aws"
            else ""
        )
        text = (
            f"AWS rejected the credentials of {source} ({code}): they are invalid or have "
            f"expired; renew them or fix {configured_in}.{hint}"
        )
    elif kind == "invalid_parameter":
        text = f"ECR refused the request for registry {names} with {source}: {message}"
    elif kind == "throttled":
        text = (
            f"The ECR API at {endpoint} throttled {action} for registry {names} with {source} ({code}, "
            f"{failure.attempts} attempt(s) with backoff): too many calls at once. Allow more retries in "
            f'{configured_in}, e.g. extra {{"config_kwargs": {{"retries": {{"mode": "standard", '
            f'"max_attempts": 10}}}}}}.'
        )
    elif kind == "service_error":
        text = (
            f"The ECR API failed for registry {names} with {source} at {endpoint} ({failure.attempts} attempt(s)): "
            f"{code}: {message}"
        )
    else:
        text = f"The ECR API call at {endpoint} for registry {names} with {source} failed: {message or code}"
    error_class = EcrCredentialsError if kind in CREDENTIAL_KINDS else EcrServiceError
    return error_class(text, failure=failure)


@dataclass
class AwsCall:
    """
    What error messages may say about the AWS call under way; the caller fills it in.

    :param endpoint_url: the ECR API endpoint the client talks to.
    """

    endpoint_url: str | None = None


@contextlib.contextmanager
def translate_aws_errors(
    source: str, registries: Sequence[EcrRegistry], configured_in: str = "the AWS connection"
) -> Iterator[AwsCall]:
    """
    Turn boto3 errors of a ``GetAuthorizationToken`` call into :func:`token_error` errors.

    Errors that are not botocore's pass through unchanged.

    :param source: how the messages name the AWS identity (a token source's ``description``).
    :param registries: the registries the call was for.
    :param configured_in: where the AWS settings live, for the messages' advice.
    :return: (as the ``with`` target) an :class:`AwsCall` to record the endpoint in.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    call = AwsCall()
    try:
        yield call
    except (BotoCoreError, ClientError) as err:
        raise token_error(classify(err, call.endpoint_url), source, registries, configured_in) from None


# What doctor's identity check shows for each kind: (summary, fix), formatted with the failure.
_STS_ADVICE: dict[str, tuple[str, str]] = {
    "no_credentials": (
        "no AWS credentials found for {source}",
        "put an access key or role_arn in the AWS connection, or give this host an instance role, "
        "AWS_PROFILE or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
    ),
    "partial_credentials": (
        "incomplete AWS credentials for {source}: {message}",
        "give both the access key id and the secret access key",
    ),
    "no_region": ("no AWS region for {source}", "set region_name in the AWS connection's extra, or AWS_DEFAULT_REGION"),
    "unreachable": (
        "cannot reach the STS API at {endpoint}",
        "check the network and proxy settings, and the connection's endpoint_url (or "
        "service_config.sts.endpoint_url); in a VPC without internet access, an STS VPC endpoint",
    ),
    "timeout": (
        "the STS API at {endpoint} did not answer for {source}: {message}",
        "check the network and proxy settings; retry",
    ),
    "invalid_credentials": (
        "AWS rejected the credentials of {source} ({code}: {message})",
        "they are invalid or have expired: renew them, or fix the AWS connection's login/password or role",
    ),
    "access_denied": ("AWS refused {source}: {message}", "check the connection's role_arn and the role's trust policy"),
    "client_error": (
        "the STS call for {source} failed: {message}",
        "check the AWS connection's settings and the network",
    ),
    "unparseable": (
        "{endpoint} does not serve STS: it answered GetCallerIdentity in another API's format "
        "(an ECR-only VPC endpoint, or a proxy's page)",
        "tasks do not need STS; for this check, point STS at an STS endpoint in the AWS connection's extra "
        "(service_config.sts.endpoint_url, e.g. an STS VPC endpoint) instead of the connection-wide endpoint_url",
    ),
    "unexpected": (
        "unexpected {code} while asking STS who {source} is",
        "rerun with --verbose for the traceback; check the AWS connection's extra",
    ),
}
_STS_SERVICE_ADVICE = (
    "the STS API failed for {source}: {code}: {message}",
    "retry; if it persists, check the AWS service health and the connection's endpoint_url",
)


def sts_advice(failure: AwsFailure, source: str) -> tuple[str, str]:
    """
    (summary, fix) for a failed STS ``GetCallerIdentity``, as doctor's first check shows it.

    :param failure: the classified failure.
    :param source: how the lines name the AWS identity.
    """
    summary, fix = _STS_ADVICE.get(failure.kind, _STS_SERVICE_ADVICE)
    facts = {"source": source, "code": failure.code, "message": failure.message, "endpoint": failure.endpoint or "?"}
    return summary.format(**facts), fix


def token_fix(
    error: EcrError,
    action: str,
    who: str,
    region: str,
    *,
    registry: EcrRegistry | None = None,
    caller_account: str | None = None,
    named_in: str = "the image name",
) -> str:
    """
    What doctor's ECR-permission check advises after a failed ``GetAuthorizationToken``.

    :param error: the error the token source raised.
    :param action: the IAM action (``ecr:GetAuthorizationToken`` or the ECR Public one).
    :param who: how doctor names the identity.
    :param region: the registry's region.
    :param registry: the image's registry, for advice about the image name.
    :param caller_account: the identity's account, when STS told it.
    :param named_in: what names the registry (the image name, or a connection's fields).
    """
    kind = error.failure.kind if error.failure is not None else None
    hedge = foreign_account_hedge(registry, who, caller_account, named_in) if registry is not None else ""
    if kind == "access_denied" and hedge:
        return f"{hedge}grant {action} to {who}"
    if kind == "access_denied":
        return f"grant {action} to {who} (an IAM policy on the identity; the action takes resource '*')"
    if kind == "invalid_parameter" and registry is not None:
        # ECR refused the registry id or region itself: the image name is what names them.
        return image_name_fix(registry, named_in)
    if isinstance(error, EcrServiceError):
        return (
            f"check the network path to the ECR API of {region} (an ecr.api VPC endpoint, "
            "proxy settings) or the connection's endpoint_url"
        )
    if kind in _STS_ADVICE:
        # The same advice as for STS: the credentials' problem, said here (STS may have been skipped).
        return _STS_ADVICE[kind][1]
    return "fix the AWS connection's credentials (login/password, role_arn or profile in its extra)"


def image_name_fix(registry: EcrRegistry, named_in: str = "the image name") -> str:
    """
    What doctor advises when the image's registry does not seem to exist: what names it is the suspect.

    :param registry: the registry the image names.
    :param named_in: what names the registry (the image name, or a connection's fields).
    """
    return (
        f"check the account id ({registry.account_id}) and region ({registry.region}) in {named_in}: "
        f"they must be those of the registry the image was pushed to (its host {registry.host})"
    )


def policy_call_error(failure: AwsFailure, action: str, subject: str, needed_by: str, on: str) -> EcrError:
    """
    The error for a failed AWS call of the image policy (``ecr:DescribeImageScanFindings``,
    ``kms:GetPublicKey``, ``signer:GetRevocationStatus``): one sentence naming the action, what it was
    for and what to do. The image was not checked, so it does not run.

    :param failure: the classified failure.
    :param action: the IAM action of the call.
    :param subject: what it was called for (``sha256:… in repository ml/train of registry …``, a key).
    :param needed_by: the rule that needs it (``the image policy's scan rule``).
    :param on: the resource to grant the action on (``the repository``, ``the key``).
    """

    endpoint = failure.endpoint or "?"
    if failure.kind == "access_denied":
        text = (
            f"The AWS identity is not allowed {action} for {subject}, which {needed_by} needs: grant it "
            f"{action} on {on}. AWS said: {failure.message}"
        )
    elif failure.kind == "invalid_credentials":
        text = (
            f"AWS rejected the credentials ({failure.code}) used to call {action} for {subject}: they are "
            "invalid or have expired; renew them or fix the AWS connection."
        )
    elif failure.kind in ("unreachable", "timeout"):
        text = (
            f"Cannot reach the AWS API at {endpoint} to call {action} for {subject} ({failure.code}): check "
            "the network, proxy settings and the connection's endpoint_url."
        )
    elif failure.kind == "throttled":
        text = (
            f"The AWS API at {endpoint} throttled {action} for {subject} ({failure.attempts} attempt(s)): "
            "retry the task, or allow more retries in the AWS connection's config_kwargs."
        )
    else:
        text = (
            f"{action} for {subject} failed at {endpoint} ({failure.code}"
            f"{': ' + failure.message if failure.message else ''}): check the AWS connection and retry."
        )
    error_class = EcrCredentialsError if failure.kind in CREDENTIAL_KINDS else EcrServiceError
    return error_class(text, failure=failure)
