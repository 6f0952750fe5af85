"""
``airflow_ecr.hooks.docker``: how pull errors are read, the pull retry on a rejected token, the
hook's settings and client, and the docker-py privates of ``hooks._docker_compat``.

The pull tests drive the real ``EcrAPIClient.pull`` and docker-py's ``APIClient.pull`` (headers,
status handling, errors) over a fake transport: :class:`FakeDaemonClient` replaces only the HTTP
request and docker-py's stream decoding, and plays the daemon's answers from a script.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import requests
from docker.errors import DockerException

from airflow_ecr import process_state
from airflow_ecr.exceptions import DockerDaemonError, EcrConfigurationError, EcrPullError, EcrRegistryUnavailableError
from airflow_ecr.hooks import _docker_compat
from airflow_ecr.hooks.docker import EcrAPIClient, EcrAuthenticator, EcrDockerHook, classify_pull_error
from airflow_ecr.registry import EcrRegistry, parse_registry_host
from airflow_ecr.settings import EcrSettings
from airflow_ecr.tokens import sources
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.sources import EcrTokenSource
from airflow_ecr.tokens.token import EcrToken
from helpers.isolation import isolate_from_host

H = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
H2 = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
IMAGE = f"{H}/app:1"
REJECTED = "unauthorized: authentication required"
NO_CREDENTIALS = f'Head "https://{H}/v2/app/manifests/1": no basic auth credentials'
NOT_FOUND = f"manifest for {IMAGE} not found: manifest unknown: manifest unknown"
LAYER = {"status": "Pulling fs layer", "id": "5f70bf18a086"}
DONE = {"status": f"Status: Downloaded newer image for {IMAGE}"}


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    isolate_from_host(monkeypatch, tmp_path, "AIRFLOW_CONN_", "DOCKER_")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))  # no ~/.docker/config.json


# -- how daemon pull errors are read (the texts are those the real daemon and registry produce) -----


@pytest.mark.parametrize(
    ("image", "message", "kind"),
    [
        (f"{H}/app:1", f'Head "https://{H}/v2/app/manifests/1": no basic auth credentials', "auth"),
        (f"{H}/app:1", "unauthorized: authentication required", "auth"),
        (f"{H}/app:1", "denied: Your authorization token has expired. Reauthenticate and try again.", "auth"),
        (f"{H}/app:1", f"login attempt to https://{H}/v2/ failed with status: 401 Unauthorized", "auth"),
        (f"{H}/app:1", f"manifest for {H}/app:1 not found: manifest unknown: manifest unknown", "not_found"),
        # The image's own name must not decide: a tag or repository that reads like an auth error.
        (f"{H}/app:v401", f"manifest for {H}/app:v401 not found: manifest unknown", "not_found"),
        (f"{H}/unauthorized:1", f"manifest for {H}/unauthorized:1 not found: manifest unknown", "not_found"),
        (f"{H}/app:1", "Get https://x/v2/: net/http: TLS handshake timeout", "unavailable"),
        (f"{H}/app:1", "toomanyrequests: too many requests", "other"),
    ],
)
def test_classify_pull_error(image, message, kind):
    assert classify_pull_error(message, image) == kind


# -- fakes ------------------------------------------------------------------------------------------


class FakeSource:
    """Hands out numbered tokens ``pw-1``, ``pw-2``, ... (one per fetch)."""

    identity = "id-fake"
    description = "fake source"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def fetch(self, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
        self.calls.append([r.registry_id for r in registries])
        now = time.time()
        return {
            r.registry_id: EcrToken("AWS", f"pw-{len(self.calls)}", f"https://{r.host}", now + 3600, now)
            for r in registries
        }


class Stream:
    """What docker-py's streamed pull returns (a generator of decoded items), recording its closing."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.closed = False
        self._items = self._generate(items)

    def _generate(self, items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        try:
            yield from items
        finally:
            self.closed = True

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._items

    def close(self) -> None:
        self._items.close()


def daemon_error(status: int, message: str) -> requests.Response:
    """The daemon's answer to a request it refuses (docker-py turns it into an APIError)."""
    response = requests.Response()
    response.status_code = status
    response.reason = {404: "Not Found"}.get(status, "Internal Server Error")
    response.url = "http+docker://localhost/v1.44/images/create"
    response._content = json.dumps({"message": message}).encode()
    return response


def daemon_ok(body: Any = "") -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    response._content = (body if isinstance(body, str) else json.dumps(body)).encode()
    return response


class FakeDaemonClient(EcrAPIClient):
    """
    An EcrAPIClient over a scripted daemon: each request takes the next answer of ``script``.

    An answer is a ``requests.Response`` (an error status makes docker-py raise), or for a streamed
    pull a list of items (a 200 whose body streams them).
    """

    def __init__(self, authenticator: EcrAuthenticator, script: list[Any]) -> None:
        super().__init__(ecr=authenticator, base_url="unix:///nonexistent.sock", version="1.44")
        self.script = list(script)
        self.requests: list[dict[str, Any]] = []
        self.streams: list[Stream] = []

    def _post(self, url: str, **kwargs: Any) -> Any:
        header = kwargs.get("headers", {}).get("X-Registry-Auth")
        sent = json.loads(base64.urlsafe_b64decode(header)) if header else None
        self.requests.append({"url": url, "params": kwargs.get("params"), "auth": sent})
        answer = self.script.pop(0)
        if isinstance(answer, list):
            self.streams.append(Stream(answer))
            return daemon_ok()
        return answer

    def _stream_helper(self, response: Any, decode: bool = False) -> Any:
        return self.streams[-1]

    @property
    def passwords(self) -> list[str | None]:
        return [r["auth"] and r["auth"]["password"] for r in self.requests]


@pytest.fixture
def source() -> FakeSource:
    return FakeSource()


@pytest.fixture
def cache(monkeypatch) -> TokenCache:
    """A memory-only cache whose invalidations are recorded in ``cache.invalidated``."""
    cache = TokenCache(EcrSettings(cache_enabled=False))
    cache.invalidated = []  # type: ignore[attr-defined]
    original = cache.invalidate

    def invalidate(source: Any, registry: EcrRegistry, token: EcrToken) -> None:
        cache.invalidated.append((registry.host, token.password))  # type: ignore[attr-defined]
        original(source, registry, token)

    monkeypatch.setattr(cache, "invalidate", invalidate)
    return cache


def client(source: FakeSource, cache: TokenCache, *script: Any) -> FakeDaemonClient:
    registries = [parse_registry_host(H), parse_registry_host(H2)]
    return FakeDaemonClient(EcrAuthenticator(registries, source, cache), list(script))


# -- the pull retry -----------------------------------------------------------------------------------


def test_rejected_token_is_invalidated_refetched_once_and_the_pull_retried(source, cache, caplog):
    fake = client(source, cache, daemon_error(500, NO_CREDENTIALS), daemon_ok("pulled"))
    with caplog.at_level(logging.INFO, logger="airflow_ecr.hooks.docker"):
        assert fake.pull(f"{H}/app", tag="1") == "pulled"
    assert fake.passwords == ["pw-1", "pw-2"]
    assert [r["params"] for r in fake.requests] == [{"tag": "1", "fromImage": f"{H}/app"}] * 2
    assert cache.invalidated == [(H, "pw-1")]
    assert len(source.calls) == 2  # one refetch, of every managed registry in one call
    assert "rejected the ECR token" in caplog.text


def test_second_rejection_raises_naming_the_image_and_registry(source, cache):
    fake = client(source, cache, daemon_error(500, NO_CREDENTIALS), daemon_error(500, REJECTED))
    with pytest.raises(EcrPullError, match="rejected a freshly fetched token too") as err:
        fake.pull(IMAGE)
    assert f"Registry {H} " in str(err.value) and f"for {IMAGE}:" in str(err.value)
    assert REJECTED in str(err.value)
    assert fake.passwords == ["pw-1", "pw-2"]
    assert len(source.calls) == 2 and not fake.script


def test_not_found_raises_at_once_without_a_refetch(source, cache):
    fake = client(source, cache, daemon_error(404, NOT_FOUND), daemon_ok("never asked"))
    with pytest.raises(EcrPullError, match=f"Image {IMAGE} was not found in {H}"):
        fake.pull(IMAGE)
    assert len(fake.requests) == 1 and len(source.calls) == 1
    assert cache.invalidated == []


def test_other_errors_are_not_retried(source, cache):
    fake = client(source, cache, daemon_error(500, "toomanyrequests: too many requests"))
    with pytest.raises(EcrPullError, match=f"Pulling {IMAGE} from {H} failed: toomanyrequests"):
        fake.pull(IMAGE)
    assert len(fake.requests) == 1 and cache.invalidated == []


def test_an_unreachable_registry_is_an_outage_not_retried_with_a_new_token(source, cache):
    fake = client(source, cache, daemon_error(500, "Get https://x/v2/: net/http: TLS handshake timeout"))
    with pytest.raises(EcrRegistryUnavailableError, match=f"Registry {H} could not serve {IMAGE}: Get"):
        fake.pull(IMAGE)
    assert len(fake.requests) == 1 and cache.invalidated == []


def test_streamed_pull_rejected_at_the_first_item_closes_the_stream_and_retries(source, cache):
    fake = client(source, cache, [{"error": REJECTED, "errorDetail": {"message": REJECTED}}], [LAYER, DONE])
    assert list(fake.pull(IMAGE, stream=True, decode=True)) == [LAYER, DONE]
    assert fake.passwords == ["pw-1", "pw-2"]
    assert cache.invalidated == [(H, "pw-1")]
    assert fake.streams[0].closed  # the rejected response is released before the retry
    assert fake.streams[1].closed  # and the good one once read to its end


def test_streamed_pull_rejected_after_a_layer_is_not_retried(source, cache):
    fake = client(source, cache, [LAYER, {"errorDetail": {"message": REJECTED}}], [LAYER, DONE])
    received: list[Any] = []
    with pytest.raises(EcrPullError, match=f"Registry {H} rejected the credentials for {IMAGE}"):
        received.extend(fake.pull(IMAGE, stream=True, decode=True))
    assert received == [LAYER]  # what had streamed was delivered
    assert len(fake.requests) == 1 and len(source.calls) == 1
    assert cache.invalidated == []
    assert fake.streams[0].closed


def test_streamed_pull_refused_at_the_request_retries(source, cache):
    fake = client(source, cache, daemon_error(500, NO_CREDENTIALS), [LAYER, DONE])
    assert list(fake.pull(IMAGE, stream=True, decode=True)) == [LAYER, DONE]
    assert fake.passwords == ["pw-1", "pw-2"]


def test_streamed_pull_rejected_twice_raises_and_closes_both_streams(source, cache):
    fake = client(source, cache, [{"error": REJECTED}], [{"error": NO_CREDENTIALS}], [DONE])
    with pytest.raises(EcrPullError, match="rejected a freshly fetched token too"):
        list(fake.pull(IMAGE, stream=True, decode=True))
    assert len(fake.requests) == 2 and [s.closed for s in fake.streams] == [True, True]
    assert len(source.calls) == 2


def test_streamed_not_found_raises_at_once(source, cache):
    fake = client(source, cache, [{"error": NOT_FOUND}], [DONE])
    with pytest.raises(EcrPullError, match="was not found"):
        list(fake.pull(IMAGE, stream=True, decode=True))
    assert len(fake.requests) == 1 and cache.invalidated == []


def test_abandoned_streamed_pull_closes_the_daemon_stream(source, cache):
    fake = client(source, cache, [LAYER, LAYER, DONE])
    pulling = fake.pull(IMAGE, stream=True, decode=True)
    assert next(pulling) == LAYER
    pulling.close()  # the caller stops reading (a killed task)
    assert fake.streams[0].closed


def test_caller_supplied_auth_config_bypasses_ecr(source, cache):
    mine = {"username": "me", "password": "mine", "serveraddress": H}
    fake = client(source, cache, daemon_error(500, REJECTED))
    with pytest.raises(DockerException, match="authentication required") as err:
        fake.pull(IMAGE, auth_config=mine)
    assert not isinstance(err.value, EcrPullError)  # docker-py's own error: no retry, no rewording
    assert fake.passwords == ["mine"] and source.calls == []


def test_other_registries_are_pulled_without_ecr_credentials(source, cache):
    fake = client(source, cache, [DONE])
    assert list(fake.pull("ghcr.io/org/app:1", stream=True, decode=True)) == [DONE]
    assert fake.passwords == [None] and source.calls == []


# -- swarm services and the daemon login check (hooks._docker_compat) --------------------------------


def test_service_carries_the_ecr_token_in_place_of_a_credential_helper(source, cache, tmp_path):
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"credHelpers": {H2: "ecr-login"}}))
    fake = client(source, cache, daemon_ok({"ID": "svc"}))
    assert fake.create_service({"ContainerSpec": {"Image": f"{H2}/app:1"}}, name="s") == {"ID": "svc"}
    assert fake.passwords == ["pw-1"]
    assert fake.requests[0]["auth"]["serveraddress"] == H2


def test_service_from_another_registry_gets_no_ecr_token(source, cache):
    fake = client(source, cache, daemon_ok({"ID": "svc"}))
    fake.create_service({"ContainerSpec": {"Image": "ghcr.io/org/app:1"}})
    assert fake.passwords == [None] and source.calls == []


def test_daemon_login_posts_exactly_the_credentials_and_stores_nothing(source, cache):
    fake = client(source, cache, daemon_ok({"Status": "Login Succeeded"}))
    credentials = {"username": "AWS", "password": "pw-x", "serveraddress": f"https://{H}"}
    posted: list[Any] = []
    fake._post_json = lambda url, data, **kw: (posted.append((url, data)), daemon_ok({"Status": "ok"}))[1]
    assert _docker_compat.daemon_login(fake, credentials) == {"Status": "ok"}
    assert posted == [("http+docker://localhost/v1.44/auth", credentials)]
    assert fake._auth_configs.is_empty


# -- the hook: settings read once, lazily; the client built directly ---------------------------------


@pytest.fixture
def connections(monkeypatch) -> list[str]:
    """Connection ids the hook looked up, in order."""
    looked_up: list[str] = []
    original = EcrDockerHook.get_connection

    def get_connection(cls: Any, conn_id: str) -> Any:
        looked_up.append(conn_id)
        return original(conn_id)

    monkeypatch.setattr(EcrDockerHook, "get_connection", classmethod(get_connection))
    return looked_up


def ecr_docker_connection(monkeypatch, conn_id: str = "ecr_x", host: str | None = None, **extra: Any) -> None:
    conn = {"conn_type": "ecr_docker", "extra": extra, **({"host": host} if host else {})}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


class RecordingCache:
    """A token cache that records what it was asked for and hands out fake tokens."""

    def __init__(self) -> None:
        self.asked: list[tuple[Any, list[str]]] = []

    def get(self, source: Any, registries: Sequence[EcrRegistry], min_life: float = 0.0) -> dict[str, EcrToken]:
        self.asked.append((source, [r.host for r in registries]))
        now = time.time()
        return {r.host: EcrToken("AWS", "pw", f"https://{r.host}", now + 3600, now) for r in registries}


@pytest.fixture
def pinged(monkeypatch) -> list[str]:
    """Daemons the hook's clients pinged (every ping succeeds) and logins they made."""
    events: list[str] = []

    def ping(self: Any) -> bool:
        events.append(f"ping {self.base_url}")
        return True

    def login(self: Any, username: str, password: str | None = None, registry: str | None = None, **kw: Any) -> dict:
        events.append(f"login {username}@{registry} reauth={kw.get('reauth')}")
        return {}

    monkeypatch.setattr(EcrAPIClient, "ping", ping)
    monkeypatch.setattr(EcrAPIClient, "login", login)
    return events


def test_registry_auth_before_the_client_uses_the_ecr_docker_connection(monkeypatch, connections):
    """Fails on the old hook: registry_auth() used the settings from before the connection was read."""
    ecr_docker_connection(monkeypatch, aws_conn_id="aws_other", registry_ids="222222222222")
    cache = RecordingCache()
    hook = EcrDockerHook(image=IMAGE, docker_conn_id="ecr_x", token_cache=cache)  # type: ignore[arg-type]
    assert hook.registry_auth(H2)["serveraddress"] == H2
    (source, hosts), *_ = cache.asked
    assert source.aws_conn_id == "aws_other"
    assert hosts == [H, H2]
    assert connections == ["ecr_x"]


def test_hook_settings_are_read_once_and_shared_by_token_source_and_client(monkeypatch, connections, pinged):
    ecr_docker_connection(monkeypatch, aws_conn_id="aws_other", region_name="eu-west-1")
    hook = EcrDockerHook(image=IMAGE, docker_conn_id="ecr_x", version="1.44", token_cache=RecordingCache())  # type: ignore[arg-type]
    assert connections == []  # constructing reads nothing
    assert hook.aws_conn_id == "aws_other" and [r.host for r in hook.registries] == [H]
    client = hook.get_conn()
    assert type(client) is EcrAPIClient and client is hook.api_client
    assert client.ecr is hook.authenticator and hook.authenticator.source is hook.token_source
    assert hook.token_source.aws_conn_id == "aws_other"
    assert pinged == ["ping http+docker://localhost"]  # no daemon login for an ecr_docker connection
    assert connections == ["ecr_x"]
    assert hook.client_created


def test_an_ecr_docker_connection_with_a_host_declares_that_alias(monkeypatch, connections):
    """
    Fails on the old hook: the registry was resolved before the connection was read, so the
    connection's registry_id/region_name never took effect and the alias image was refused.
    """
    ecr_docker_connection(monkeypatch, host="registry.example.com", aws_conn_id="aws_other",
                          registry_id="210987654321", region_name="us-east-1")  # fmt: skip
    cache = RecordingCache()
    hook = EcrDockerHook(image="registry.example.com/app:1", docker_conn_id="ecr_x", token_cache=cache)  # type: ignore[arg-type]
    assert connections == []  # constructing reads nothing
    auth = hook.registry_auth()  # before get_conn(): the connection's aws_conn_id is used all the same
    assert auth["serveraddress"] == "registry.example.com"
    ((source, hosts),) = cache.asked
    assert source.aws_conn_id == "aws_other" and hosts == ["registry.example.com"]
    assert [(r.account_id, r.region) for r in hook.registries] == [("210987654321", "us-east-1")]


def test_an_ecr_docker_connection_without_a_host_declares_no_alias(monkeypatch):
    """Its extras cannot make the image's host (which a template may have chosen) an alias."""
    ecr_docker_connection(monkeypatch, registry_id="210987654321", region_name="us-east-1")
    cache = RecordingCache()
    hook = EcrDockerHook(image="attacker.example.com/app:1", docker_conn_id="ecr_x", token_cache=cache)  # type: ignore[arg-type]
    with pytest.raises(
        EcrConfigurationError, match=r"nor on a declared alias: declare the alias in \[ecr\] registry_aliases"
    ):
        hook.registry_auth()
    assert cache.asked == []  # refused before any token was fetched


def test_an_ecr_docker_connection_alias_needs_its_registry_id_and_region(monkeypatch):
    ecr_docker_connection(monkeypatch, host="registry.example.com", registry_id="210987654321")
    hook = EcrDockerHook(image="registry.example.com/app:1", docker_conn_id="ecr_x")
    with pytest.raises(EcrConfigurationError, match=r"'ecr_x' \(type ecr_docker\) declares its host an alias.*region"):
        hook.registry_auth()


def test_configured_aliases_are_declared_and_template_arguments_are_not(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW__ECR__REGISTRY_ALIASES",
        "registry.example.com=210987654321:us-east-1, b.example=111111111111:eu-west-1",
    )
    hook = EcrDockerHook(image="registry.example.com/app:1", token_cache=RecordingCache())  # type: ignore[arg-type]
    assert hook.registry_auth()["serveraddress"] == "registry.example.com"
    with pytest.raises(EcrConfigurationError, match="nor on a declared alias"):
        EcrDockerHook(image="attacker.example.com/app:1", registry_id="210987654321", region_name="us-east-1")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("registry.example.com", "is not 'host=<12-digit account id>:<region>'"),
        ("registry.example.com=2109:us-east-1", "12-digit"),
        ("registry.example.com=210987654321:moon", "not an AWS region"),
        (f"{H}=210987654321:us-east-1", "is an Amazon ECR host"),
        ("a.example=210987654321:us-east-1,A.example=111111111111:us-east-1", "declared twice"),
    ],
)
def test_malformed_registry_aliases_option_is_refused_naming_it(monkeypatch, value, message):
    monkeypatch.setenv("AIRFLOW__ECR__REGISTRY_ALIASES", value)
    with pytest.raises(EcrConfigurationError, match=rf"\[ecr\] registry_aliases: .*{re.escape(message)}"):
        EcrDockerHook(image=IMAGE)


def test_hook_arguments_win_over_the_ecr_docker_connection(monkeypatch):
    ecr_docker_connection(monkeypatch, aws_conn_id="aws_other", registry_ids=["222222222222"])
    hook = EcrDockerHook(image=IMAGE, docker_conn_id="ecr_x", aws_conn_id="aws_mine", registry_ids=[])
    assert hook.aws_conn_id == "aws_mine" and [r.host for r in hook.registries] == [H]


def test_ecr_docker_connection_with_unknown_fields_is_refused(monkeypatch):
    ecr_docker_connection(monkeypatch, regoin="x")
    hook = EcrDockerHook(image=IMAGE, docker_conn_id="ecr_x")
    with pytest.raises(
        EcrConfigurationError, match="'ecr_x' \\(type ecr_docker\\) has unknown extra fields \\['regoin'\\]"
    ):
        hook.registry_auth()


def test_docker_connection_logs_the_client_in_as_docker_hook_does(monkeypatch, connections, pinged):
    monkeypatch.setenv(
        "AIRFLOW_CONN_OTHER_REGISTRY",
        json.dumps({"conn_type": "docker", "host": "registry.example.com", "port": 5000, "login": "bob",
                    "password": "secret", "extra": {"reauth": "no"}}),
    )  # fmt: skip
    hook = EcrDockerHook(image=IMAGE, docker_conn_id="other_registry", version="1.44")
    hook.get_conn()
    assert pinged == ["ping http+docker://localhost", "login bob@registry.example.com:5000 reauth=False"]
    assert connections == ["other_registry"]  # read once, for both the settings and the login
    assert hook.aws_conn_id == "aws_default"


def test_client_fails_over_to_the_next_daemon_url_then_names_the_urls(monkeypatch, pinged):
    def ping(self: Any) -> bool:
        if "down" in self.base_url:
            raise DockerException("Connection refused")
        pinged.append(f"ping {self.base_url}")
        return True

    monkeypatch.setattr(EcrAPIClient, "ping", ping)
    hook = EcrDockerHook(image=IMAGE, base_url=["tcp://down:2375", "tcp://up:2375"], version="1.44")
    assert hook.api_client.base_url == "http://up:2375"
    urls = ["tcp://down:2375", "tcp://down2:2375"]
    assert not EcrDockerHook(image=IMAGE, base_url=urls).client_created
    with pytest.raises(DockerDaemonError, match="Cannot reach the Docker daemon at \\['tcp://down:2375'"):
        EcrDockerHook(image=IMAGE, base_url=urls, version="1.44").get_conn()


def test_tls_daemon_urls_are_addressed_over_https(pinged):
    hook = EcrDockerHook(image=IMAGE, base_url="tcp://daemon:2376", tls=True, version="1.44")
    assert hook.api_client.base_url == "https://daemon:2376"


def test_cache_hit_in_a_new_process_builds_nothing_it_does_not_use(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_T", json.dumps({"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}))
    fetched: list[Any] = []
    monkeypatch.setattr(
        EcrTokenSource, "fetch", lambda self, registries: fetched.append(1) or FakeSource().fetch(registries)
    )
    first = EcrDockerHook(image=IMAGE, aws_conn_id="aws_t").registry_auth()  # a previous task filled the host cache
    process_state.reset()  # a new task process

    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a cache hit must not get here")

    monkeypatch.setattr(EcrDockerHook, "get_connection", classmethod(forbidden))
    monkeypatch.setattr(EcrTokenSource, "connection", forbidden)
    monkeypatch.setattr(EcrTokenSource, "client", forbidden)
    monkeypatch.setattr(EcrAPIClient, "__init__", forbidden)
    hook = EcrDockerHook(image=IMAGE, aws_conn_id="aws_t")
    assert hook.registry_auth() == first
    assert len(fetched) == 1
    assert hook.token_source._connection is sources._NOT_LOOKED_UP and hook.token_source._session is None
    assert not hook.client_created


def test_resolving_what_is_not_an_image_name_is_a_configuration_error() -> None:
    # Before the image models were one, docker-py's lenient split sent this name to the registry.
    hook = EcrDockerHook(image=IMAGE)
    with pytest.raises(EcrConfigurationError, match="must be lowercase"):
        hook.resolve_manifest(f"{H}/App:1")
