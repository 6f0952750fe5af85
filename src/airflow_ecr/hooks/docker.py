"""EcrDockerHook: a DockerHook whose client logs in to ECR registries lazily, with cached tokens."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.docker.hooks.docker import DockerHook
from docker import APIClient
from docker.constants import DEFAULT_TIMEOUT_SECONDS
from docker.errors import APIError, DockerException

from airflow_ecr._compat import AirflowException
from airflow_ecr.exceptions import (
    DockerDaemonError,
    EcrConfigurationError,
    EcrError,
    EcrImageNotFoundError,
    EcrImagePolicyError,
    EcrRegistryUnavailableError,
    EcrServiceError,
)
from airflow_ecr.hooks._docker_compat import log_in_with_docker_connection, set_service_auth
from airflow_ecr.hooks.daemon_messages import classify_pull_error, pull_stream_error
from airflow_ecr.hooks.pull_errors import pull_error
from airflow_ecr.images.manifests import Manifest, RegistryRejected, fetch_manifest
from airflow_ecr.images.reference import digest_in_pull_status
from airflow_ecr.provider_info import ECR_CONNECTION_FIELDS, ECR_CONNECTION_HIDDEN_FIELDS, ECR_CONNECTION_RELABELING
from airflow_ecr.registry import (
    EcrRegistry,
    ImageReference,
    alias_table,
    declare_alias,
    fallback_registries,
    resolve_host,
    resolve_registry,
    with_account,
)
from airflow_ecr.settings import DEFAULT_AWS_CONN_ID, ecr_settings
from airflow_ecr.tokens.cache import TokenCache, TokenSource
from airflow_ecr.tokens.sources import EcrTokenSource
from airflow_ecr.tokens.token import EcrToken

if TYPE_CHECKING:
    from airflow_ecr.trust.outcome import Verdict
    from airflow_ecr.trust.policy import ImageRule

log = logging.getLogger(__name__)

T = TypeVar("T")


class EcrAuthenticator:
    """
    Supplies docker-py with ECR credentials for a fixed set of registries, fetched on first use.

    :param registries: the registries this client may need (image's registry first).
    :param source: the AWS identity tokens are fetched with.
    :param cache: the token cache.
    """

    def __init__(self, registries: Sequence[EcrRegistry], source: TokenSource, cache: TokenCache) -> None:
        self.registries = {r.host: r for r in registries}
        self.source = source
        self.cache = cache
        self.tokens: dict[str, EcrToken] = {}

    def logs_in_to(self, host: str) -> bool:
        """Whether ``host`` is one of the ECR registries this authenticator has tokens for."""
        return host in self.registries

    def auth_for(self, host: str) -> dict[str, str]:
        """The docker auth config for ``host``; every managed registry is resolved in one go."""
        if host not in self.tokens:
            self.tokens.update(self.cache.get(self.source, list(self.registries.values())))
        return self.tokens[host].docker_auth(host)

    def reject(self, host: str) -> None:
        """The registry refused the token for ``host``: forget it so the next use fetches anew."""
        token = self.tokens.pop(host, None)
        log.info("Registry %s rejected the ECR token; fetching a new one and retrying once.", host)
        if token is not None:
            self.cache.invalidate(self.source, self.registries[host], token)


class EcrAPIClient(APIClient):
    """
    A ``docker.APIClient`` that authenticates pulls and swarm services for ECR registries itself.

    Credentials go to the daemon in the ``X-Registry-Auth`` header of the request that needs them:
    no ``/auth`` round trip, nothing written to ``~/.docker/config.json``.

    :param ecr: the authenticator for the ECR registries this client pulls from.
    :param on_run: called with (image, whether this daemon runs it) right before a container (True)
        or a swarm service (False) is created from an image: the operators record what runs there.
    :param kwargs: the ``docker.APIClient`` arguments (``base_url``, ``version``, ``tls``, ``timeout``).
    """

    def __init__(
        self, *, ecr: EcrAuthenticator, on_run: Callable[[str, bool], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.ecr = ecr
        self.on_run = on_run
        # The digest each pull of an ECR image reported (``Digest: sha256:...``), by image as asked.
        self.pull_digests: dict[str, str | None] = {}

    def pull(self, repository: str, tag: str | None = None, **kwargs: Any) -> Any:
        host = _host_of(repository)
        if kwargs.get("auth_config") is not None or not self.ecr.logs_in_to(host):
            return super().pull(repository, tag, **kwargs)
        image = (f"{repository}@{tag}" if tag.startswith("sha256:") else f"{repository}:{tag}") if tag else repository
        self.pull_digests[image] = None
        if kwargs.get("stream"):
            return self._pull_stream(image, host, repository, tag, kwargs)
        for attempt in (1, 2):
            try:
                output = super().pull(repository, tag, auth_config=self.ecr.auth_for(host), **kwargs)
                for line in str(output).splitlines():
                    with contextlib.suppress(ValueError):
                        self.pull_digests[image] = digest_in_pull_status(json.loads(line)) or self.pull_digests[image]
                return output
            except APIError as err:
                self._give_up_unless_retryable(image, host, str(err.explanation or err), attempt)
            self.ecr.reject(host)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _pull_stream(
        self, image: str, host: str, repository: str, tag: str | None, kwargs: dict[str, Any]
    ) -> Iterator[Any]:
        """Stream the pull; on a credentials error before any layer arrives, refetch and retry once."""
        for attempt in (1, 2):
            stream = None
            try:
                stream = super().pull(repository, tag, auth_config=self.ecr.auth_for(host), **kwargs)
                for position, item in enumerate(stream):
                    message = pull_stream_error(item)
                    if message is None:
                        self.pull_digests[image] = digest_in_pull_status(item) or self.pull_digests[image]
                        yield item
                        continue
                    # Past the first item layers were already fetched with this token: no retry.
                    self._give_up_unless_retryable(image, host, message, attempt, retryable=position == 0)
                    break
                else:
                    return
            except APIError as err:
                self._give_up_unless_retryable(image, host, str(err.explanation or err), attempt)
            finally:
                _close(stream)  # release a rejected (or abandoned) response before going on
            self.ecr.reject(host)

    @staticmethod
    def _give_up_unless_retryable(image: str, host: str, message: str, attempt: int, retryable: bool = True) -> None:
        """Raise the pull error, unless it is a first (retryable) rejection of the credentials."""
        kind = classify_pull_error(message, image)
        if kind != "auth" or attempt == 2 or not retryable:
            raise pull_error(image, host, message, kind, retried=attempt == 2) from None

    def create_container(self, image: str, *args: Any, **kwargs: Any) -> Any:
        if self.on_run is not None:
            self.on_run(image, True)
        return super().create_container(image, *args, **kwargs)

    def create_service(self, task_template: Any, *args: Any, **kwargs: Any) -> Any:
        image = task_template.get("ContainerSpec", {}).get("Image", "")
        if self.on_run is not None and image:
            self.on_run(image, False)
        host = _host_of(image) if image else ""
        if self.ecr.logs_in_to(host):
            set_service_auth(self, host, self.ecr.auth_for(host))
        return super().create_service(task_template, *args, **kwargs)


def _host_of(image: str) -> str:
    """The registry host of ``image``, or "" if it is no image name (the daemon then says what is wrong)."""
    try:
        return ImageReference.parse(image).host
    except ValueError:
        return ""


def _close(stream: Any) -> None:
    close = getattr(stream, "close", None)  # docker-py streams are generators
    if close is not None:
        close()


@dataclass(frozen=True)
class EcrHookSettings:
    """
    What an :class:`EcrDockerHook` works with once its ``docker_conn_id`` is read; everything else
    (token source, authenticator, client) derives from it.

    :param registries: the registries to authenticate, the main one first.
    :param aws_conn_id: the AWS connection tokens are fetched with.
    :param login_connection: the ``docker`` connection the daemon logs in with (a non-ECR
        registry), or None: no ``docker_conn_id``, or an ``ecr_docker`` one.
    :param fallbacks: the main registry's replicas to pull from, in order, when its region fails.
    """

    registries: tuple[EcrRegistry, ...]
    aws_conn_id: str | None
    login_connection: Any = field(default=None, repr=False, compare=False)
    fallbacks: tuple[EcrRegistry, ...] = ()

    @classmethod
    def resolve(
        cls,
        target: Mapping[str, Any],
        aws_conn_id: str | None,
        connection: Any = None,
        registries: Sequence[EcrRegistry] | None = None,
        fallback_regions: Any = None,
    ) -> EcrHookSettings:
        """
        The settings from the hook's arguments and its ``docker_conn_id`` connection, if any.

        An ``ecr_docker`` connection's extra may set ``aws_conn_id`` (used when the hook's is the
        default) and ``registry_ids`` (used where the hook's are unset). With a host, the connection
        declares that host an alias of the registry its ``registry_id`` and ``region_name`` name;
        without one, those two are used where the hook's are unset (they must then agree with the
        image's ECR host). It replaces the daemon login a ``docker`` connection does.

        :param target: the hook's ``image``, ``registry``, ``region_name``, ``registry_id``, ``registry_ids``.
        :param aws_conn_id: the hook's ``aws_conn_id``.
        :param connection: the ``docker_conn_id`` connection, or None.
        :param registries: ``ecr_registries(**target)`` if already computed.
        :param fallback_regions: the hook's ``fallback_regions`` (the connection's are used when None).
        :raises EcrConfigurationError: an ``ecr_docker`` connection with unknown extra fields or a
            malformed alias; an image on a host that is neither ECR nor a declared alias; bad
            fallback regions.
        """
        if connection is None or connection.conn_type != EcrDockerHook.conn_type:
            found = registries if registries is not None else ecr_registries(**target, aliases=configured_aliases())
            return cls(tuple(found), aws_conn_id, connection, replicas(found[0], fallback_regions))
        extra = {k: v for k, v in (connection.extra_dejson or {}).items() if v not in ("", None)}
        if isinstance(extra.get("registry_ids"), str):  # as the connection form stores it
            extra["registry_ids"] = [i.strip() for i in extra["registry_ids"].split(",") if i.strip()]
        unknown = sorted(set(extra) - {"aws_conn_id", "region_name", "registry_id", "registry_ids", "fallback_regions"})
        if unknown:
            raise EcrConfigurationError(
                f"Connection {connection.conn_id!r} (type ecr_docker) has unknown extra fields "
                f"{unknown}: use aws_conn_id, region_name, registry_id, registry_ids, fallback_regions."
            )
        if fallback_regions is None:
            fallback_regions = extra.pop("fallback_regions", None)
        extra.pop("fallback_regions", None)
        if aws_conn_id == EcrDockerHook.default_aws_conn_id and "aws_conn_id" in extra:
            aws_conn_id = extra["aws_conn_id"]
        aliases = configured_aliases()
        if connection.host:
            try:
                alias = declare_alias(connection.host, extra.pop("registry_id", None), extra.pop("region_name", None))
                aliases = {**aliases, **alias_table([alias])}
            except ValueError as err:
                raise EcrConfigurationError(
                    f"Connection {connection.conn_id!r} (type ecr_docker) declares its host an alias of an ECR "
                    f"registry; give it a registry host and the registry's registry_id and region_name: {err}"
                ) from None
        merged = {k: v if v is not None else extra.get(k) for k, v in target.items()}
        found = ecr_registries(**merged, aliases=aliases)
        return cls(tuple(found), aws_conn_id, fallbacks=replicas(found[0], fallback_regions))


class EcrDockerHook(DockerHook):
    """
    A DockerHook whose client authenticates pulls from Amazon ECR with tokens from ``tokens``.

    Tokens are fetched only when a pull or swarm service needs them, shared through the host cache,
    refreshed before they expire, and refetched once when the registry rejects them. The
    ``docker_conn_id`` connection is read at most once, at first use (:attr:`settings`).

    :param image: the image whose registry to authenticate (sets the main registry).
    :param registry: an ECR registry host, instead of ``image``.
    :param aws_conn_id: the Airflow AWS connection tokens are fetched with (None: boto3's chain).
    :param region_name: the registry's region; must agree with the host (it never makes a host an
        alias: declare aliases in ``[ecr] registry_aliases`` or an ``ecr_docker`` connection).
    :param registry_id: the registry's account id; must agree with the host.
    :param registry_ids: more registries (account ids in the same region) to authenticate, fetched
        in the same API call.
    :param docker_conn_id: an ``ecr_docker`` connection with the settings above (and, with a host,
        an alias declaration), or a Docker
        connection for another, non-ECR registry (optional).
    :param base_url: the Docker daemon URL(s); default ``$DOCKER_HOST`` or the local socket.
    :param token_cache: the token cache (default: the process's, for the ``[ecr]`` settings).
    :param fallback_regions: regions the main registry is replicated to, for the ECR operators'
        fallback (:attr:`fallback_registries`, :meth:`in_registry`); default the ``ecr_docker``
        connection's.
    :param kwargs: the other ``DockerHook`` arguments (``version``, ``tls``, ``timeout``).
    """

    conn_name_attr = "docker_conn_id"
    default_conn_name = "ecr_docker_default"
    conn_type = "ecr_docker"
    hook_name = "Docker (Amazon ECR)"
    default_aws_conn_id = DEFAULT_AWS_CONN_ID

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of an ``ecr_docker`` connection (Airflow 2 UI)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from wtforms import StringField

        return {name: StringField(label, widget=BS3TextFieldWidget()) for name, label in ECR_CONNECTION_FIELDS.items()}

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hide what an ``ecr_docker`` connection does not use."""
        return {"hidden_fields": list(ECR_CONNECTION_HIDDEN_FIELDS), "relabeling": dict(ECR_CONNECTION_RELABELING)}

    def __init__(
        self,
        *,
        image: str | None = None,
        registry: str | None = None,
        aws_conn_id: str | None = DEFAULT_AWS_CONN_ID,
        region_name: str | None = None,
        registry_id: str | None = None,
        registry_ids: Sequence[str] | None = None,
        docker_conn_id: str | None = None,
        base_url: str | list[str] | None = None,
        token_cache: TokenCache | None = None,
        fallback_regions: Sequence[str] | str | None = None,
        **kwargs: Any,
    ) -> None:
        base_url = base_url or os.environ.get("DOCKER_HOST") or "unix://var/run/docker.sock"
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if kwargs.get("tls"):  # as DockerHook: a TLS daemon is addressed as https://
            urls = ["https://" + url.removeprefix("tcp://") if url.startswith("tcp://") else url for url in urls]
        super().__init__(docker_conn_id=docker_conn_id, base_url=urls, **kwargs)
        self.base_url = base_url
        self._urls = urls
        self._client_options = {
            "version": kwargs.get("version"),
            "tls": kwargs.get("tls") or False,
            "timeout": kwargs.get("timeout", DEFAULT_TIMEOUT_SECONDS),
        }
        self._aws_conn_id = aws_conn_id
        self._target: dict[str, Any] = {
            "image": image,
            "registry": registry,
            "region_name": region_name,
            "registry_id": registry_id,
            "registry_ids": registry_ids,
        }
        # Bad arguments fail here, before any I/O; an alias host may yet be declared by the
        # docker_conn_id connection, which is read at first use (settings), still before any token.
        self._registries = registries_before_connection(self._target, docker_conn_id)
        self._fallback_regions = fallback_regions
        if self._registries is not None:
            replicas(self._registries[0], fallback_regions)  # bad regions fail here, before any I/O
        self._token_cache = token_cache
        self._kwargs = kwargs
        # Called with (image, whether this daemon runs it) before a container or service is created.
        self.on_run: Callable[[str, bool], None] | None = None

    @cached_property
    def settings(self) -> EcrHookSettings:
        """The resolved settings; the ``docker_conn_id`` connection is read here, once."""
        connection = self.get_connection(self.docker_conn_id) if self.docker_conn_id else None
        return EcrHookSettings.resolve(
            self._target, self._aws_conn_id, connection, self._registries, self._fallback_regions
        )

    @property
    def registries(self) -> list[EcrRegistry]:
        """The registries this hook authenticates, the main one first."""
        return list(self.settings.registries)

    @property
    def fallback_registries(self) -> list[EcrRegistry]:
        """The main registry's replicas to pull from, in order, when its region fails."""
        return list(self.settings.fallbacks)

    def in_registry(self, registry: EcrRegistry) -> EcrDockerHook:
        """
        This hook for the same image in another registry (a replica): same daemon, AWS identity,
        cross-account registries (in that region) and token cache.

        :param registry: one of :attr:`fallback_registries`.
        """
        image = self._target["image"]
        login = self.settings.login_connection
        return EcrDockerHook(
            image=ImageReference.parse(image).name_on_host(registry.host) if image else None,
            registry=None if image else registry.host,
            aws_conn_id=self.settings.aws_conn_id,
            registry_ids=[r.account_id for r in self.settings.registries[1:]] or None,
            docker_conn_id=login.conn_id if login is not None else None,
            base_url=self.base_url,
            token_cache=self._token_cache,
            **self._kwargs,
        )

    @property
    def aws_conn_id(self) -> str | None:
        """The AWS connection tokens are fetched with (an ``ecr_docker`` connection may name it)."""
        return self.settings.aws_conn_id

    @cached_property
    def token_source(self) -> EcrTokenSource:
        return EcrTokenSource.from_connection(self.settings.aws_conn_id)

    @cached_property
    def authenticator(self) -> EcrAuthenticator:
        cache = self._token_cache or TokenCache.shared()
        return EcrAuthenticator(self.settings.registries, self.token_source, cache)

    @cached_property
    def api_client(self) -> EcrAPIClient:
        """The docker client (connected, pinged, and logged in to a ``docker`` connection if given)."""
        login = self.settings.login_connection
        # DockerHook.api_client hard-codes APIClient(...), with no factory to override: this is its
        # loop (connect, ping, log in, fail over to the next URL; the same in provider 4.3.1-4.6.1).
        for url in self._urls:
            try:
                client = EcrAPIClient(
                    ecr=self.authenticator, on_run=self._report_run, base_url=url, **self._client_options
                )
                if not client.ping():
                    raise AirflowException(f"Failed to ping host {url}.")
                if login is not None:
                    log_in_with_docker_connection(self, client, login)
            except APIError:
                raise
            except DockerException as err:
                self.log.error("Failed to establish connection to Docker host %s: %s", url, err)
            else:
                return client
        raise DockerDaemonError(
            f"Cannot reach the Docker daemon at {self.base_url}: check that it runs and that this "
            "user may open its socket, or set docker_url."
        )

    def _report_run(self, image: str, local: bool) -> None:
        # The client keeps this bound method, so a callback set on the hook later still reaches it.
        if self.on_run is not None:
            self.on_run(image, local)

    @property
    def client_created(self) -> bool:
        """Whether :attr:`api_client` was built (the operators' ``on_kill`` asks)."""
        return "api_client" in self.__dict__

    def get_conn(self) -> EcrAPIClient:
        return self.api_client

    def registry_auth(self, host: str | None = None) -> dict[str, str]:
        """
        The docker auth config (``username``/``password``/``serveraddress``) for a registry.

        :param host: the registry host; default the main registry.
        """
        return self.authenticator.auth_for(host or self.settings.registries[0].host)

    def resolve_manifest(self, image: str) -> Manifest:
        """
        What ``image``'s tag points to in its registry now, asked with the cached token (one
        ``HEAD``, no layer download; see :mod:`airflow_ecr.images.manifests`).

        :param image: an image in one of this hook's registries.
        :raises EcrConfigurationError: the image is in none of them, or is not an image name.
        :raises EcrPullError: the registry refused, has no such image, or could not be reached.
        """
        try:
            name = ImageReference.parse(image)
        except ValueError as err:
            raise EcrConfigurationError(str(err)) from None
        if not self.authenticator.logs_in_to(name.host):
            raise self._not_ours(image)
        import requests

        with requests.Session() as session:
            for attempt in (1, 2):
                try:
                    return fetch_manifest(session, name, self.registry_auth(name.host))
                except RegistryRejected:
                    if attempt == 2:
                        raise pull_error(image, name.host, "HTTP 401 for the manifest", "auth", True) from None
                    self.authenticator.reject(name.host)
        raise AssertionError("unreachable: the second attempt returns or raises")

    def image_rule(self, image: str, dag_policy: Mapping[str, Any] | None, where: str) -> ImageRule | None:
        """
        The image policy rule ``image`` runs under: the deployment's (``[ecr] image_policy``) for its
        scope, tightened by the DAG's ``image_policy``; None when neither has one.

        :param image: the image in its main registry (after a pull-through rewrite: what runs).
        :param dag_policy: the task's ``image_policy`` argument, if any.
        :param where: who asks, for the sentence refusing a loosening (``task 'train'``).
        :raises EcrConfigurationError: a malformed policy file, or a DAG that loosens it.
        """
        from airflow_ecr.trust.policy import effective_rule, load_image_policy

        policy = load_image_policy(ecr_settings())
        deployment = policy.rule_for(ImageReference.parse(image)) if policy is not None else None
        return effective_rule(deployment, dag_policy, where)

    def check_image_policy(self, rule: ImageRule, image: str, digest: str) -> Verdict:
        """
        Check ``digest`` of ``image`` against ``rule`` (scan findings, signatures), or take the host's
        cached verdict for it (no request); the task runs that digest only if this returns.

        :param rule: the effective rule (:meth:`image_rule`).
        :param image: the image as it is pulled (in this hook's registries).
        :param digest: the manifest digest that will be pulled and run.
        :raises EcrImagePolicyError: the policy refuses it, one sentence naming the rule that failed.
        """
        from airflow_ecr.trust.verdicts import VerdictCache

        cache = VerdictCache.for_settings(ecr_settings())
        fingerprint = rule.fingerprint  # hashes the trust store's files: once per check
        verdict = cache.get(digest, fingerprint, time.time(), image=image) if cache is not None else None
        if verdict is None:
            verdict = self.verdict_now(rule, image, digest)
            if cache is not None and verdict.passed:
                cache.put(verdict, fingerprint)
        cached = " (cached verdict)" if verdict.cached else ""
        for outcome in verdict.outcomes:
            said = "passed" if outcome.passed else "FAILED"
            self.log.info(
                "Image policy %r, %s rule, %s: %s%s", verdict.scope, outcome.rule, said, outcome.summary, cached
            )
        if not verdict.passed:
            raise EcrImagePolicyError(verdict.refusal(), verdict=verdict)
        return verdict

    def verdict_now(self, rule: ImageRule, image: str, digest: str) -> Verdict:
        """
        ``rule`` checked on ``digest`` now, asking AWS and the registry (never the verdict cache);
        what it finds, refusing or not. Doctor shows it; :meth:`check_image_policy` acts on it.

        :param rule: the effective rule (:meth:`image_rule`).
        :param image: the image as it is pulled (in this hook's registries).
        :param digest: the manifest digest that will be pulled and run.
        """
        from airflow_ecr.hooks.policy_io import HookPolicyIO
        from airflow_ecr.trust.check import check_digest

        name = ImageReference.parse(image)
        registry = next((r for r in self.settings.registries if r.host == name.host), None)
        if registry is None:
            raise self._not_ours(image)
        io = HookPolicyIO(self.token_source, registry, self.registry_auth)
        return check_digest(rule, image, name, digest, io, datetime.now(timezone.utc))

    def _not_ours(self, image: str) -> EcrConfigurationError:
        return EcrConfigurationError(
            f"Image {image} is not in this hook's registries ({', '.join(self.authenticator.registries)})."
        )

    def resolve_in_any_region(self, image: str) -> tuple[EcrRegistry, Manifest]:
        """
        What ``image`` points to, asked in its region and then in its replicas
        (:meth:`in_each_region`): a replica holds the same digests.

        :param image: an image in this hook's main registry (by tag or digest).
        :returns: the registry that answered, and its answer.
        :raises EcrError: the main region's error, or every region's in one (:func:`every_region_failed`).
        """
        return self.in_each_region(image, lambda hook, there: hook.resolve_manifest(there), "resolving it in")

    def in_each_region(
        self, image: str, attempt: Callable[[EcrDockerHook, str], T], doing: str
    ) -> tuple[EcrRegistry, T]:
        """
        ``attempt`` in ``image``'s region and then, while a region fails (its ECR API or registry
        unreachable, 5xx, still throttled), in each of :attr:`fallback_registries` in order, with
        that replica's hook (:meth:`in_registry`) and the same image on its host. Never on a
        refusal; a missing image ends it. This is ``fallback_regions``: every mode asks here.

        :param image: an image in this hook's main registry (by tag or digest).
        :param attempt: the work in one region, called with that region's hook (this one first)
            and the image there; it pulls, runs or resolves.
        :param doing: the warning's words before "its replica in <region>" (``"pulling it from"``).
        :returns: the registry whose attempt succeeded, and what the attempt returned.
        :raises EcrError: the main region's error as it is; else every region's in one
            (:func:`every_region_failed`), of the last one's kind.
        """
        name = ImageReference.parse(image)
        regions = [self.settings.registries[0], *self.fallback_registries]
        failures: list[tuple[str, EcrError]] = []
        for index, registry in enumerate(regions):
            try:
                if not index:
                    return registry, attempt(self, image)
                return registry, attempt(self.in_registry(registry), name.name_on_host(registry.host))
            except REGIONAL_OUTAGES as err:
                failures.append((registry.region, err))
                if index + 1 == len(regions):
                    if not index:
                        raise
                    raise every_region_failed(image, failures, err) from None
                self.log.warning(
                    "ECR in %s failed for %s (%s); %s its replica in %s.",
                    registry.region, image, err, doing, regions[index + 1].region,
                )  # fmt: skip
            except EcrImageNotFoundError as err:
                if not index:
                    raise
                failures.append((registry.region, err))
                raise every_region_failed(image, failures, err) from None
        raise AssertionError("unreachable: the last region returns or raises")


# What makes a region's replica worth trying: its ECR API failing (unreachable, 5xx, still throttled)
# or its registry failing. Never a refusal (401/403) or a missing image (404).
REGIONAL_OUTAGES = (EcrServiceError, EcrRegistryUnavailableError)


def every_region_failed(image: str, failures: Sequence[tuple[str, EcrError]], last: EcrError) -> EcrError:
    """One error naming every region tried and what each answered (of the last failure's kind).

    :param image: the image as given.
    :param failures: (region, error) of each region tried, in order.
    :param last: the last error (its class is the result's).
    """
    tried = "; ".join(f"{region}: {err}" for region, err in failures)
    return type(last)(f"Image {image} could not be pulled from any region tried ({tried}).")


def replicas(registry: EcrRegistry, fallback_regions: Any) -> tuple[EcrRegistry, ...]:
    """``fallback_registries`` as an :class:`EcrConfigurationError` (one sentence) on bad input.

    :param registry: the image's registry.
    :param fallback_regions: the ``fallback_regions`` argument or connection field.
    """
    try:
        return tuple(fallback_registries(registry, fallback_regions))
    except ValueError as err:
        raise EcrConfigurationError(str(err)) from None


def configured_aliases() -> dict[str, EcrRegistry]:
    """The alias hosts the deployment declared in ``[ecr] registry_aliases``."""
    from airflow_ecr.settings import ecr_settings

    return ecr_settings().registry_aliases


def registries_before_connection(target: Mapping[str, Any], docker_conn_id: str | None) -> list[EcrRegistry] | None:
    """
    ``ecr_registries(**target)`` with the configured aliases, or None when that fails but the
    ``docker_conn_id`` connection (not read yet) may declare the image's host an alias.

    :param target: the hook's ``image``, ``registry``, ``region_name``, ``registry_id``, ``registry_ids``.
    :param docker_conn_id: the hook's or operator's ``docker_conn_id``.
    :raises EcrConfigurationError: when no connection can help.
    """
    try:
        return ecr_registries(**target, aliases=configured_aliases())
    except EcrConfigurationError:
        if not docker_conn_id:
            raise
        return None


def ecr_registries(
    *,
    image: str | None = None,
    registry: str | None = None,
    region_name: str | None = None,
    registry_id: str | None = None,
    registry_ids: Sequence[str] | None = None,
    aliases: Mapping[str, EcrRegistry] | None = None,
) -> list[EcrRegistry]:
    """
    The registries a task needs: the image's (or ``registry``'s) first, then ``registry_ids``.

    :param aliases: the declared alias hosts (configuration and connections only, never arguments).
    :raises EcrConfigurationError: with one sentence saying what to fix.
    """
    if (image is None) == (registry is None):
        raise EcrConfigurationError("Give exactly one of image or registry.")
    if registry_ids is not None and (
        isinstance(registry_ids, str) or not all(isinstance(i, str) for i in registry_ids)
    ):
        raise EcrConfigurationError(
            f"registry_ids must be a list of 12-digit account id strings, got {registry_ids!r}."
        )
    try:
        if image is not None:
            main = resolve_registry(image, registry_id=registry_id, region_name=region_name, aliases=aliases)
        else:
            main = resolve_host(str(registry), registry_id=registry_id, region_name=region_name, aliases=aliases)
        extra = [with_account(main, i) for i in (registry_ids or ()) if i != main.account_id]
    except ValueError as err:
        raise EcrConfigurationError(str(err)) from None
    if extra and main.public:
        raise EcrConfigurationError("registry_ids cannot be combined with an ECR Public image.")
    return [main, *dict.fromkeys(extra)]
