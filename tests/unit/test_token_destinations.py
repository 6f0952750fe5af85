"""
Where ECR tokens go: whatever the operator, hook, secrets backend or connection extra is given, a
token is only ever presented to the ECR registry it was issued for, or to an alias the deployment
declared (``[ecr] registry_aliases``, an ``ecr_docker`` connection's host, the secrets backend's
settings). Never to a host that a rendered template (DAG-run conf) chose.

The destinations are captured at the real boundaries: docker-py talks HTTP to a small fake daemon on
127.0.0.1, which records the ``X-Registry-Auth`` header of every pull and service request, and the
manifest requests (swarm services resolve their tag) go over real TLS, through an HTTPS proxy, to a
fake registry that records every ``Authorization`` header and the host it was sent to. Only the
ECR API is faked (``EcrTokenSource.fetch``): a token's password names its issuer.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from http.server import ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_ecr import process_state
from airflow_ecr.exceptions import EcrConfigurationError, EcrConnectionLookupError
from airflow_ecr.operators.docker import EcrDockerOperator, EcrDockerSwarmOperator
from airflow_ecr.registry import EcrRegistry, parse_registry_host
from airflow_ecr.testing import running_task
from airflow_ecr.tokens.sources import EcrTokenSource
from airflow_ecr.tokens.token import EcrToken
from helpers.fake_http import QuietHandler, loopback_url, serving
from helpers.fake_registry import FakeRegistry, fake_registry
from helpers.isolation import isolate_from_host

A, B = "111111111111", "222222222222"
# What the deployment declared, and so the only non-ECR hosts that may receive a token.
CONFIG_ALIAS = ("registry.example.com", B, "us-east-1")
CONN_ALIAS = ("proxy.example.org", A, "eu-west-1")
BACKEND_ALIAS = ("mirror.example.net", A, "eu-west-1")
DECLARED = {host: (account, region) for host, account, region in (CONFIG_ALIAS, CONN_ALIAS, BACKEND_ALIAS)}

HOST_NAMES = (
    f"{A}.dkr.ecr.eu-west-1.amazonaws.com",
    f"{B}.dkr.ecr.us-east-1.amazonaws.com",
    f"{A}.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
    f"{B}.dkr-ecr.eu-west-1.on.aws",
    "public.ecr.aws",
    "registry.example.com",
    "Registry.Example.com",
    "proxy.example.org",
    "mirror.example.net",
    "attacker.example.com",
    "attacker.example.com:5000",
    "ghcr.io",
    "localhost:5000",
    f"{A}.dkr.ecr.eu-west-1.amazonaws.com.attacker.example.com",
    f"{A}.dkr.ecr.eu-west-1.amazonaws.com\n",
    f"{A}.d\u212ar.ecr.eu-west-1.amazonaws.com",
)
HOSTS = st.sampled_from(HOST_NAMES)
ACCOUNTS = st.one_of(st.none(), st.sampled_from([A, B, "123456789012"]))
REGIONS = st.one_of(st.none(), st.sampled_from(["eu-west-1", "us-east-1", "us-gov-west-1"]))
CONNECTIONS = st.sampled_from([None, "ecr_alias", "ecr_no_host", "ecr_hostile_extra"])


def issuer(password: str) -> tuple[str, str]:
    """The (registry id, region) a fake token was issued for."""
    _, account, region = password.split("|")
    return account, region


def assert_token_went_where_it_belongs(auth: dict[str, str], image_host: str) -> None:
    """A token is presented only to its own ECR registry or to an alias declared for that registry."""
    host, expected = auth["serveraddress"], issuer(auth["password"])
    assert host == image_host, f"the token for {expected} was sent for {image_host!r} as {host!r}"
    try:
        registry = parse_registry_host(host)
    except ValueError:
        assert DECLARED.get(host.lower()) == expected, f"a token for {expected} went to undeclared host {host!r}"
    else:
        assert (registry.registry_id, registry.region) == expected, f"a token for {expected} went to {host!r}"


class Daemon(QuietHandler):
    """Just enough of the Docker Engine API; every request with a registry login is recorded."""

    protocol_version = "HTTP/1.1"
    logins: ClassVar[list[tuple[str, dict[str, str]]]] = []

    def _handle(self) -> None:
        url = urlparse(self.path)
        body = self.body()
        header = self.headers.get("X-Registry-Auth")
        if url.path.endswith("/images/create"):
            image = parse_qs(url.query)["fromImage"][0]
        elif url.path.endswith("/services/create"):
            image = json.loads(body)["TaskTemplate"]["ContainerSpec"]["Image"]
        else:
            image = ""
        if header:
            auth = json.loads(base64.urlsafe_b64decode(header))
            if auth.get("password"):
                Daemon.logins.append((image, auth))
        if url.path.endswith("/_ping"):
            self.reply(200, b"OK")
        elif url.path.endswith("/images/json"):
            self.reply(200, [])
        elif url.path.endswith("/images/create"):
            self.reply(200, {"status": "Downloaded"})
        else:  # the container or service: far enough, every login has been made
            self.reply(500, {"message": "fake daemon stops here"})

    do_GET = do_POST = do_DELETE = _handle


@pytest.fixture(scope="module")
def daemon_url() -> Iterator[str]:
    with serving(ThreadingHTTPServer(("127.0.0.1", 0), Daemon)) as server:
        yield loopback_url(server, "tcp")


def fake_fetch(self: Any, registries: Sequence[EcrRegistry]) -> dict[str, EcrToken]:
    now = time.time()
    return {
        r.registry_id: EcrToken("AWS", f"pw|{r.registry_id}|{r.region}", f"https://{r.host}", now + 3600, now)
        for r in registries
    }


# Every host above that a certificate can name: the fake registry answers for all of them.
REGISTRY_HOSTS = sorted({h.lower() for h in HOST_NAMES if h.isascii() and ":" not in h and "\n" not in h})


@pytest.fixture
def world(monkeypatch, tmp_path) -> Iterator[None]:
    isolate_from_host(monkeypatch, tmp_path, "AIRFLOW_CONN_", "DOCKER_", "AIRFLOW__ECR__")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("AIRFLOW__ECR__CACHE_ENABLED", "False")
    monkeypatch.setenv("AIRFLOW__ECR__REGISTRY_ALIASES", "{}={}:{}".format(*CONFIG_ALIAS))
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT", json.dumps({"conn_type": "aws", "extra": {"region_name": "eu-west-1"}})
    )
    host, account, region = CONN_ALIAS
    connections = {
        "ecr_alias": {"host": host, "extra": {"registry_id": account, "region_name": region}},
        # Extras without a host name no alias: the image's host is not the connection's to choose.
        "ecr_no_host": {"extra": {"registry_id": A, "region_name": "eu-west-1"}},
        "ecr_hostile_extra": {"extra": {"registry_id": B, "region_name": "us-east-1", "registry_ids": A}},
    }
    for conn_id, conn in connections.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "ecr_docker", **conn}))
    monkeypatch.setattr(EcrTokenSource, "fetch", fake_fetch)
    Daemon.logins.clear()
    with fake_registry(tmp_path / "registry", REGISTRY_HOSTS) as registry:
        for name, value in registry.environment().items():
            monkeypatch.setenv(name, value)
        yield


def assert_manifest_requests_went_where_they_belong() -> None:
    """Every token the manifest API was shown (``Authorization``) belongs to the host it went to."""
    for seen in FakeRegistry.seen:
        if seen.password:
            assert_token_went_where_it_belongs({"serveraddress": seen.host, "password": seen.password}, seen.host)


def run_task(operator: type, image: str, templated: bool, daemon_url: str, **kwargs: Any) -> None:
    """Build the task as a DAG file would, render it as a run would, and execute it."""
    try:
        op = operator(
            task_id="t",
            image="{{ params.image }}" if templated else image,
            docker_url=daemon_url,
            api_version="1.44",
            force_pull=True,
            **kwargs,
        )
    except EcrConfigurationError:
        return  # refused at DAG parse time
    op.image = image  # what rendering `{{ params.image }}` from DAG-run conf produced
    # The fake daemon refuses to run anything (the logins are made by then); refusals end here too.
    with contextlib.suppress(Exception):
        op.execute({})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    operator=st.sampled_from([EcrDockerOperator, EcrDockerSwarmOperator]),
    host=HOSTS,
    templated=st.booleans(),
    registry_id=ACCOUNTS,
    region_name=REGIONS,
    registry_ids=st.one_of(st.none(), st.lists(st.sampled_from([A, B]), max_size=2)),
    docker_conn_id=CONNECTIONS,
)
@example(EcrDockerOperator, "attacker.example.com", True, A, "eu-west-1", None, None)
@example(EcrDockerSwarmOperator, "attacker.example.com", True, A, "eu-west-1", None, None)
@example(EcrDockerOperator, "proxy.example.org", False, None, None, None, "ecr_alias")
def test_no_operator_input_sends_a_token_to_a_host_it_was_not_issued_for(
    world, daemon_url, operator, host, templated, registry_id, region_name, registry_ids, docker_conn_id
):
    """
    Fails on the old code: with registry_id and region_name, a rendered image on any host got the token
    (the first explicit example: the daemon's pull of attacker.example.com carried it).
    """
    Daemon.logins.clear()
    FakeRegistry.seen.clear()
    process_state.reset()
    image = f"{host}/app/x:1"
    run_task(
        operator, image, templated, daemon_url,
        registry_id=registry_id, region_name=region_name, registry_ids=registry_ids, docker_conn_id=docker_conn_id,
    )  # fmt: skip
    for image_sent, auth in Daemon.logins:
        assert image_sent.startswith(f"{auth['serveraddress']}/")
        assert_token_went_where_it_belongs(auth, image_sent.split("/")[0])
    assert_manifest_requests_went_where_they_belong()


def test_declared_aliases_do_receive_their_registrys_token(world, daemon_url):
    """The feature kept: both kinds of declaration work, for the operator and the swarm operator."""
    run_task(EcrDockerOperator, "registry.example.com/app:1", True, daemon_url)
    run_task(EcrDockerSwarmOperator, "proxy.example.org/app:1", False, daemon_url, docker_conn_id="ecr_alias")
    sent = [(image.split("/")[0], auth["serveraddress"], issuer(auth["password"])) for image, auth in Daemon.logins]
    assert sent == [
        ("registry.example.com", "registry.example.com", (B, "us-east-1")),
        ("proxy.example.org", "proxy.example.org", (A, "eu-west-1")),
    ]
    # The swarm service's tag was resolved first, with the same token, at the same host.
    assert [(s.method, s.host, issuer(s.password)) for s in FakeRegistry.seen] == [
        ("HEAD", "proxy.example.org", (A, "eu-west-1"))
    ]


def test_an_undeclared_host_is_refused_before_any_token_is_fetched(world, daemon_url, monkeypatch):
    fetched: list[Any] = []
    monkeypatch.setattr(EcrTokenSource, "fetch", lambda self, registries: fetched.append(registries) or {})
    op = EcrDockerOperator(task_id="t", image="{{ params.image }}", registry_id=A, region_name="eu-west-1",
                           docker_url=daemon_url, api_version="1.44")  # fmt: skip
    op.image = "attacker.example.com/steal:1"
    with pytest.raises(
        EcrConfigurationError, match=r"nor on a declared alias: declare the alias in \[ecr\] registry_aliases"
    ):
        op.execute({})
    assert fetched == [] and Daemon.logins == []


# -- the secrets backend: what a conn id can make it hand out ------------------------------------

CONN_IDS = st.one_of(
    HOSTS.map(lambda host: f"ecr:{host}"),
    st.sampled_from(["ecr:attacker.example.com/", f"ecr:{A}.dkr.ecr.eu-west-1.amazonaws.com\n/", "docker_alias"]),
    st.text(max_size=40).map(lambda text: f"ecr:{text}"),
)


def backend_connection(conn_id: str) -> Any:
    """What the secrets backend, configured with a declared alias, answers for ``conn_id`` in a task."""
    from airflow_ecr.secrets.ecr import EcrDockerConnectionBackend

    host, account, region = BACKEND_ALIAS
    mapping = {"docker_alias": {"registry": host, "registry_id": account, "region_name": region}}
    with running_task():
        return EcrDockerConnectionBackend(connections=mapping, region_name="eu-west-1").get_connection(conn_id)


def test_the_secrets_backend_answers_its_registries_and_its_declared_alias(world):
    """So that the property below is not vacuous: owned ids do get a token, each for its registry."""
    assert backend_connection("docker_alias").host == "mirror.example.net"
    conn = backend_connection(f"ecr:{B}.dkr.ecr.us-east-1.amazonaws.com")
    assert issuer(conn.password) == (B, "us-east-1")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conn_id=CONN_IDS)
def test_no_conn_id_makes_the_secrets_backend_hand_a_token_to_another_host(world, conn_id):
    try:
        conn = backend_connection(conn_id)
    except (EcrConnectionLookupError, ValueError):
        return
    if conn is not None:
        assert_token_went_where_it_belongs({"serveraddress": conn.host, "password": conn.password}, conn.host)
