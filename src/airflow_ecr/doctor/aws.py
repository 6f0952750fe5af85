"""
The AWS checks: who the AWS connection is (STS), and whether ECR hands that identity a token.

Both only render: what a failed call means is :func:`~airflow_ecr.tokens.aws_errors.classify`'s
(an :class:`~airflow_ecr.tokens.aws_errors.AwsFailure`), how it reads is
:func:`~airflow_ecr.tokens.aws_errors.sts_advice`'s and
:func:`~airflow_ecr.tokens.aws_errors.token_fix`'s, and the exit code is the failure's or the error's.
"""

from __future__ import annotations

from typing import Any

from airflow_ecr.doctor.results import Check, CheckId, CheckResult, DoctorState, result

IDENTITY: CheckId = ("aws_identity", "AWS identity")
PERMISSION: CheckId = ("ecr_permission", "ECR permission")


def check_aws_identity(state: DoctorState) -> CheckResult:
    """
    STS ``GetCallerIdentity`` with the AWS connection: who tokens would be fetched as.

    Any failure is a warning, not a stop: tasks never call STS, and in a private network whose VPC
    endpoints serve ECR only, STS is out of reach while pulls work. The identity is then shown from
    the connection's settings, and the other checks go on.
    """
    from airflow.providers.amazon.aws.hooks.sts import StsHook
    from botocore.exceptions import ClientError

    from airflow_ecr.tokens.aws_errors import classify, sts_advice

    region = state.registry.region if state.registry is not None and not state.registry.public else None
    hook = StsHook(aws_conn_id=state.aws_conn_id, region_name=region)
    config = hook.conn_config
    source = (
        f"connection {state.aws_conn_id!r}"
        if state.aws_conn_id and config
        else "boto3's default credential chain"
        + (f" (no connection {state.aws_conn_id!r})" if state.aws_conn_id else "")
    )
    endpoint = config.get_service_endpoint_url("sts")
    details: dict[str, Any] = {"aws_conn_id": state.aws_conn_id, "credentials_from": source, "sts_endpoint": endpoint}
    missing = missing_connection(state.aws_conn_id)
    if missing is not None:
        details["connection_missing"] = True
    try:
        client: Any = hook.conn
        identity = client.get_caller_identity()
    except Exception as err:
        failure = classify(err, endpoint)
        if isinstance(err, ClientError):  # AWS answered: its error code is a fact worth keeping
            details["error_code"] = failure.code
        summary, fix = sts_advice(failure, f"aws_conn_id={state.aws_conn_id!r} ({source})")
        if missing is not None:  # advice about the connection's fields would be wrong: there is none
            missing["summary"] += f"; {summary}"
            return result(IDENTITY, details=details, **missing)
        settings = connection_settings(config, region)
        details["settings"] = settings
        shown = ", ".join(f"{k} {v}" for k, v in settings.items() if v) or "none"
        note = "the other checks go on (tasks do not call STS"
        note += ", but a role_arn is assumed through STS)" if settings.get("role_arn") else ")"
        return result(
            IDENTITY,
            "warn",
            f"{summary}; the identity, from the settings of {source}: {shown}",
            fix=f"{fix}; {note}",
            details=details,
        )
    state.arn = str(identity["Arn"])
    details.update(account=str(identity["Account"]), arn=state.arn, user_id=str(identity.get("UserId", "")))
    if missing is not None:
        missing["summary"] += f": account {identity['Account']}, {state.arn}"
        return result(IDENTITY, details=details, **missing)
    return result(IDENTITY, "ok", f"account {identity['Account']}, {state.arn} (from {source})", details=details)


def missing_connection(aws_conn_id: str | None) -> dict[str, Any] | None:
    """
    The identity check's ``status``, ``summary``, ``fix`` and ``exit_code`` when ``aws_conn_id``
    names no Airflow connection, else None: a warning (tasks then use boto3's default chain, with a
    warning), or a failure under ``[ecr] require_aws_connection`` (tasks then fail).

    :param aws_conn_id: the AWS connection id doctor was given.
    """
    import os

    from airflow_ecr.exceptions import EcrMissingConnectionError
    from airflow_ecr.settings import require_aws_connection
    from airflow_ecr.tokens.credential_facts import default_chain_source
    from airflow_ecr.tokens.sources import EcrTokenSource

    if not aws_conn_id or not EcrTokenSource.from_connection(aws_conn_id).connection_missing:
        return None
    used = default_chain_source(os.environ)
    summary = f"no connection with id {aws_conn_id!r}; boto3's default credential chain takes {used}"
    fix = f"create the AWS connection {aws_conn_id!r} or fix aws_conn_id"
    fix += " (aws_conn_id=None uses the default chain on purpose)"
    if require_aws_connection():
        fix += "; tasks fail while [ecr] require_aws_connection is True"
        return {"status": "fail", "summary": summary, "fix": fix, "exit_code": EcrMissingConnectionError.exit_code}
    return {"status": "warn", "summary": summary, "fix": fix}


def connection_settings(config: Any, region: str | None) -> dict[str, str | None]:
    """
    What the AWS connection says about the identity, without asking AWS: never a secret (the
    access key id names a key, it does not sign with it).

    :param config: the amazon provider's ``AwsConnectionWrapper`` of the connection.
    :param region: the region the checks use (the image's), where the connection sets none.
    """
    return {
        "connection": (getattr(config, "conn_id", None) or None) if config else None,
        "access_key_id": getattr(config, "aws_access_key_id", None),
        "role_arn": getattr(config, "role_arn", None),
        "profile": getattr(config, "profile_name", None),
        "region": getattr(config, "region_name", None) or region,
        "endpoint": config.get_service_endpoint_url("ecr"),
    }


def check_ecr_permission(state: DoctorState) -> CheckResult:
    """``GetAuthorizationToken`` for the image's registry, fetched now (not from the cache)."""
    from airflow_ecr.exceptions import EcrCredentialsError, EcrMissingConnectionError, EcrServiceError
    from airflow_ecr.tokens.aws_errors import token_action, token_fix
    from airflow_ecr.tokens.policy import CLOCK_ADVICE, expired_on_arrival
    from airflow_ecr.tokens.sources import EcrTokenSource

    registry = state.require_registry()
    action = token_action(registry)
    details: dict[str, Any] = {"registry": registry.host, "region": registry.region, "action": action}
    source = EcrTokenSource.from_connection(state.aws_conn_id)
    try:
        token = source.fetch([registry])[registry.registry_id]
    except EcrMissingConnectionError as err:  # [ecr] require_aws_connection: the identity check says more
        return result(PERMISSION, "fail", str(err), exit_code=err.exit_code, details=details)
    except (EcrCredentialsError, EcrServiceError) as err:
        fix = token_fix(
            err,
            action,
            state.who,
            registry.region,
            registry=registry,
            caller_account=state.account,
            named_in=state.named_in,
        )
        return result(PERMISSION, "fail", str(err), fix=fix, exit_code=err.exit_code, details=details)
    state.token = token
    details["expires_at"] = token.expires_at
    expired = expired_on_arrival(token)
    if expired is not None:
        # The task's rule: such a token serves one pull, uncached, with a warning; doctor says the same.
        details["expired_on_arrival"] = True
        fix = f"{CLOCK_ADVICE} Tasks use such a token once, without caching it, and warn."
        return result(PERMISSION, "warn", f"{action} granted, but {expired}", fix=fix, details=details)
    return result(PERMISSION, "ok", f"{action} granted (token valid for {_duration(token.lifetime)})", details=details)


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


CHECKS = (
    Check(*IDENTITY, check_aws_identity),
    Check(*PERMISSION, check_ecr_permission, needs_image=True),
)
