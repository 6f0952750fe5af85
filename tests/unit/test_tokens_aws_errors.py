"""tokens/aws_errors.py: one classification of AWS failures, rendered for tasks and for doctor."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from airflow_ecr import exit_codes
from airflow_ecr.exceptions import EcrCredentialsError, EcrError, EcrServiceError
from airflow_ecr.registry import parse_registry_host
from airflow_ecr.tokens.aws_errors import (
    allows_stale_token,
    classify,
    sts_advice,
    token_error,
    token_fix,
    translate_aws_errors,
)

REG = parse_registry_host("111111111111.dkr.ecr.eu-west-1.amazonaws.com")


def client_error(code: str, retries: int = 0, status: int | None = None) -> ClientError:
    metadata: dict[str, int] = {"RetryAttempts": retries}
    if status is not None:
        metadata["HTTPStatusCode"] = status
    response = {"Error": {"Code": code, "Message": f"{code} said no"}, "ResponseMetadata": metadata}
    return ClientError(response, "GetAuthorizationToken")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("error", "kind", "exit_code", "raised"),
    [
        (NoCredentialsError(), "no_credentials", exit_codes.EXIT_AWS_CREDENTIALS, EcrCredentialsError),
        (PartialCredentialsError(provider="env", cred_var="x"), "partial_credentials", 3, EcrCredentialsError),
        (NoRegionError(), "no_region", exit_codes.EXIT_AWS_CREDENTIALS, EcrCredentialsError),
        (
            EndpointConnectionError(endpoint_url="https://api"),
            "unreachable",
            exit_codes.EXIT_ECR_SERVICE,
            EcrServiceError,
        ),
        (client_error("AccessDeniedException"), "access_denied", 3, EcrCredentialsError),
        (client_error("ExpiredTokenException"), "invalid_credentials", 3, EcrCredentialsError),
        (client_error("ThrottlingException", retries=4), "throttled", exit_codes.EXIT_ECR_SERVICE, EcrServiceError),
        (client_error("ServerException"), "service_error", exit_codes.EXIT_ECR_SERVICE, EcrServiceError),
        (ReadTimeoutError(endpoint_url="https://api"), "timeout", exit_codes.EXIT_ECR_SERVICE, EcrServiceError),
        (ConnectTimeoutError(endpoint_url="https://api"), "unreachable", exit_codes.EXIT_ECR_SERVICE, EcrServiceError),
        (CredentialRetrievalError(provider="sso", error_msg="x"), "client_error", 4, EcrServiceError),
    ],
)
def test_each_failure_has_one_kind_one_exit_code_and_one_error_class(
    error: Exception, kind: str, exit_code: int, raised: type
) -> None:
    failure = classify(error, "https://api")
    assert (failure.kind, failure.exit_code) == (kind, exit_code)
    rendered = token_error(failure, "aws_conn_id='x'", [REG])
    assert type(rendered) is raised and rendered.failure is failure and rendered.exit_code == exit_code
    assert "\n" not in str(rendered)
    summary, fix = sts_advice(failure, "aws_conn_id='x'")
    assert summary and fix


def test_attempts_and_endpoint_are_data() -> None:
    failure = classify(client_error("ThrottlingException", retries=4), "https://api.ecr")
    assert (failure.attempts, failure.endpoint, failure.code) == (5, "https://api.ecr", "ThrottlingException")
    assert "5 attempt(s)" in str(token_error(failure, "s", [REG]))


def test_a_foreign_exception_is_unexpected_and_its_text_is_not_kept() -> None:
    failure = classify(RuntimeError("secret-ish text"), None)
    assert failure.kind == "unexpected" and failure.exit_code == exit_codes.EXIT_UNEXPECTED
    assert "secret-ish" not in repr(failure)


def test_translate_passes_foreign_errors_through_and_records_the_endpoint() -> None:
    with pytest.raises(RuntimeError), translate_aws_errors("s", [REG]):
        raise RuntimeError("not AWS")
    endpoint = "https://api.ecr.eu-west-1.amazonaws.com"

    def denied_call() -> None:
        with translate_aws_errors("s", [REG]) as call:
            call.endpoint_url = endpoint
            raise client_error("AccessDeniedException")

    with pytest.raises(EcrCredentialsError) as err:
        denied_call()
    assert err.value.failure is not None and err.value.failure.endpoint == endpoint


def test_doctor_advice_is_chosen_from_the_kind_not_the_text() -> None:
    denied = token_error(classify(client_error("AccessDeniedException")), "s", [REG])
    expired = token_error(classify(client_error("ExpiredToken")), "s", [REG])
    down = token_error(classify(client_error("ServerException")), "s", [REG])
    action = "ecr:GetAuthorizationToken"
    assert token_fix(denied, action, "arn:x", "eu-west-1").startswith("grant ecr:GetAuthorizationToken")
    assert token_fix(expired, action, "arn:x", "eu-west-1") == (
        "they are invalid or have expired: renew them, or fix the AWS connection's login/password or role"
    )
    assert "network path" in token_fix(down, action, "arn:x", "eu-west-1")


@pytest.mark.parametrize(
    ("error", "stale"),
    [
        (client_error("ServerException", status=500), True),
        (client_error("ServiceUnavailable", status=503), True),
        (client_error("ServerException"), True),  # no status: the code says it
        (client_error("ThrottlingException", status=400), True),
        (EndpointConnectionError(endpoint_url="https://api"), True),
        (ConnectTimeoutError(endpoint_url="https://api"), True),
        (ReadTimeoutError(endpoint_url="https://api"), True),
        (ConnectionClosedError(endpoint_url="https://api"), True),
        (client_error("AccessDeniedException", status=400), False),
        (client_error("AccessDenied", status=403), False),
        (client_error("UnrecognizedClientException", status=403), False),
        (client_error("InvalidClientTokenId", status=403), False),
        (client_error("ExpiredTokenException", status=400), False),
        (client_error("MissingAuthenticationTokenException", status=403), False),
        (client_error("SomeNewRefusal", status=400), False),  # unknown 4xx: not told apart from a denial
        (client_error("SomeNewRefusal"), False),
        (client_error("InvalidParameterException", status=400), False),
        (NoCredentialsError(), False),
        (CredentialRetrievalError(provider="sso", error_msg="x"), False),
        (RuntimeError("not AWS"), False),
    ],
)
def test_only_service_and_network_failures_allow_a_stale_token(error: Exception, stale: bool) -> None:
    failure = classify(error, "https://api")
    assert failure.allows_stale_token is stale
    assert allows_stale_token(token_error(failure, "s", [REG])) is stale
    assert failure.denies_identity is (failure.kind in ("access_denied", "invalid_credentials"))


def test_an_error_without_a_classified_failure_allows_no_stale_token() -> None:
    assert not allows_stale_token(EcrServiceError("no failure behind it"))
    assert not allows_stale_token(EcrError("x"))
    assert not allows_stale_token(RuntimeError("x"))


def test_the_foreign_account_hedge_is_one_sentence_for_tasks_and_doctor() -> None:
    from airflow_ecr.tokens.aws_errors import foreign_account_hedge

    assert foreign_account_hedge(REG, "arn:x", "222222222222", "the image name") == (
        "the image's registry 111111111111 is not the account of arn:x (222222222222): if that is a typo, "
        "fix the account id in the image name; else "
    )
    assert foreign_account_hedge(REG, "arn:x", "111111111111", "the image name") == ""
    assert foreign_account_hedge(REG, "arn:x", None, "the image name") == ""
    public = parse_registry_host("public.ecr.aws")
    assert foreign_account_hedge(public, "arn:x", "222222222222", "the image name") == ""
    denied = token_error(classify(client_error("AccessDeniedException")), "s", [public])
    action = "ecr-public:GetAuthorizationToken"
    assert token_fix(denied, action, "arn:x", "us-east-1", registry=public, caller_account="222222222222").startswith(
        f"grant {action} to arn:x"
    )
