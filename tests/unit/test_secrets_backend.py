"""
EcrDockerConnectionBackend against the in-process ECR emulator (boto3 over real HTTP): the id
scheme, zero calls for other ids, the delegate, the token cache, Airflow's own secrets cache and
dispatcher, and errors.

Tests run inside a task, as Airflow's task runner sets one up (its own ``set_current_context``);
``process_role = "server"`` runs one as the API server, scheduler or webserver would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import airflow
import pytest

from airflow_ecr import process_state
from airflow_ecr._compat import AirflowNotFoundException
from airflow_ecr.exceptions import LOOKUP_ERRORS_ARE_AUTHORITATIVE as AUTHORITATIVE
from airflow_ecr.exceptions import EcrConnectionLookupError
from airflow_ecr.provider_info import get_provider_info
from airflow_ecr.secrets.ecr import EcrDockerConnectionBackend
from airflow_ecr.testing import running_task
from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount
from airflow_ecr.tokens.cache import TokenCache
from airflow_ecr.tokens.sources import EcrTokenSource
from helpers.fernet import break_fernet_like_cryptography_51
from helpers.isolation import isolate_from_host

AIRFLOW_3 = int(airflow.__version__.split(".")[0]) >= 3
ACCT1, ACCT2 = "111111111111", "222222222222"
HOST1 = f"{ACCT1}.dkr.ecr.eu-west-1.amazonaws.com"
HOST2 = f"{ACCT2}.dkr.ecr.us-east-1.amazonaws.com"
ID1, ID2 = f"ecr:{HOST1}", f"ecr:{HOST2}"
SECRET_KEY = "SeCrEt" + secrets.token_hex(8)  # the AWS secret key: must never show anywhere
BACKEND_PATH = "airflow_ecr.secrets.ecr.EcrDockerConnectionBackend"


@pytest.fixture(scope="module")
def emu() -> Iterator[EcrEmulator]:
    with EcrEmulator([EmulatedAccount(ACCT1, "eu-west-1"), EmulatedAccount(ACCT2, "us-east-1")]) as emulator:
        yield emulator


@pytest.fixture
def process_role() -> str:
    """Where the backend runs: "task" (a worker's task process) unless a test parametrizes "server"."""
    return "task"


@pytest.fixture(autouse=True)
def _isolated(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, process_role: str) -> Iterator[None]:
    """A private host cache, empty memory, ECR's token policy, no AWS identity from the environment."""
    isolate_from_host(monkeypatch, tmp_path, "AIRFLOW__SECRETS__", "AIRFLOW__WORKERS__SECRETS")
    emu.reset()
    emu.configure(token_ttl=43200, rotate_fraction=0.5)
    for account in (ACCT1, ACCT2):
        emu.revoke(account)
    if process_role == "task":
        with running_task():
            yield
    else:
        yield


def new_key() -> str:
    return "AKIAUNIT" + secrets.token_hex(6).upper()


def make(emu: EcrEmulator, key: str | None = None, **kwargs: Any) -> EcrDockerConnectionBackend:
    """The backend with explicit credentials (amazon-style kwargs), one attempt per API call."""
    return EcrDockerConnectionBackend(
        endpoint_url=emu.url,
        aws_access_key_id=key or new_key(),
        aws_secret_access_key=SECRET_KEY,
        config_kwargs={"retries": {"total_max_attempts": 1}},
        **kwargs,
    )


def ecr_calls(emu: EcrEmulator) -> list[dict[str, Any]]:
    return [c for c in emu.calls() if c["target"].endswith("GetAuthorizationToken")]


# -- recognition --------------------------------------------------------------------------------


def test_registry_name_resolves_to_a_docker_login_with_a_live_token(emu):
    key = new_key()
    conn = make(emu, key).get_connection(ID1)
    assert (conn.conn_id, conn.conn_type, conn.host, conn.login) == (ID1, "docker", HOST1, "AWS")
    assert conn.password == emu.password(ACCT1)[0]
    calls = ecr_calls(emu)
    assert [(c["registry_ids"], c["region"], c["access_key_id"]) for c in calls] == [([ACCT1], "eu-west-1", key)]


def test_every_partition_form_and_ecr_public_are_recognised(emu):
    backend = make(emu)
    conn = backend.get_connection("ecr:public.ecr.aws")
    assert (conn.host, conn.login) == ("public.ecr.aws", "AWS")
    assert ecr_calls(emu)[-1]["target"].startswith("SpencerFrontendService.")
    assert ecr_calls(emu)[-1]["region"] == "us-east-1"
    for host in (
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
        "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
        "123456789012.dkr-ecr.eu-west-1.on.aws",
    ):
        assert backend.owns(f"ecr:{host}")
        assert backend.registry(f"ecr:{host}").host == host


def test_get_conn_value_is_json_that_deserializes_to_the_same_login(emu):
    backend = make(emu)
    value = backend.get_conn_value(ID2)
    assert json.loads(value) == {
        "conn_type": "docker",
        "host": HOST2,
        "login": "AWS",
        "password": emu.password(ACCT2)[0],
    }
    conn = backend.deserialize_connection(ID2, value)
    assert (conn.host, conn.login, conn.password) == (HOST2, "AWS", emu.password(ACCT2)[0])


def test_friendly_ids_map_to_a_host_an_image_or_an_alias(emu):
    mapping = {
        "docker_lab": HOST1,
        "docker_app": f"{HOST2}/app/hello:1",
        "docker_alias": {"registry": "registry.example.com", "registry_id": ACCT1, "region_name": "eu-west-1"},
    }
    # As Airflow 3's per-key AIRFLOW__SECRETS__BACKEND_KWARG__CONNECTIONS hands it over: raw JSON text.
    for connections in (mapping, json.dumps(mapping)):
        process_state.reset()
        backend = make(emu, connections=connections)
        hosts = {i: backend.get_connection(i).host for i in mapping}
        assert hosts == {"docker_lab": HOST1, "docker_app": HOST2, "docker_alias": "registry.example.com"}
        assert backend.get_connection("docker_alias").password == emu.password(ACCT1)[0]
    # The alias shares the account's token: one call per registry and run.
    assert sorted(tuple(c["registry_ids"]) for c in ecr_calls(emu)) == [(ACCT1,), (ACCT1,), (ACCT2,), (ACCT2,)]


def test_unrecognised_ids_return_none_with_no_call_and_no_cache_access(emu):
    backend = make(emu, connections={"docker_lab": HOST1})
    for conn_id in ("docker_default", "aws_default", "ECR:" + HOST1, "ecr_" + HOST1, HOST1, "docker_lab2", ""):
        assert backend.get_connection(conn_id) is None
        assert backend.get_conn_value(conn_id) is None
    assert backend.get_variable("anything") is None
    assert backend.get_config("sql_alchemy_conn") is None
    assert ecr_calls(emu) == []
    # Neither the token cache (no file read) nor the AWS session was even created.
    assert "token_cache" not in backend.__dict__ and "token_source" not in backend.__dict__
    assert make(emu, conn_id_prefix=None).get_connection(ID1) is None
    assert ecr_calls(emu) == []


# -- where it answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("process_role", ["server"])
def test_outside_a_task_owned_ids_return_none_with_no_aws_call(emu, tmp_path, caplog, monkeypatch):
    """The API server (Execution API GetConnection for any task), scheduler, webserver: no token."""
    from airflow.models.connection import Connection

    backend = make(emu, connections={"docker_lab": HOST1})
    for conn_id in (ID1, ID2, "docker_lab", "ecr:foo"):
        assert backend.get_connection(conn_id) is None
        assert backend.get_conn_value(conn_id) is None
    assert asyncio.run(backend.aget_connection(ID1)) is None
    # Airflow's own lookup, as the Execution API's connections route makes it in the API server.
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", BACKEND_PATH)
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", json.dumps({"endpoint_url": emu.url}))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", new_key())
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    with pytest.raises(AirflowNotFoundException):
        Connection.get_connection_from_secrets(ID2)
    assert emu.calls() == []  # no AWS call of any kind
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    assert "token_source" not in backend.__dict__
    assert f"Connection {ID1!r} is not resolved here" in caplog.text
    assert "[workers] secrets_backend" in caplog.text
    # The same backend answers once a task runs in this process.
    with running_task():
        assert backend.get_connection(ID1).password == emu.password(ACCT1)[0]


@pytest.mark.parametrize(
    ("allowed", "by_account"),
    [
        ([ACCT1, "public.ecr.aws"], True),
        (f"{ACCT1}, public.ecr.aws", True),  # as an AIRFLOW__..._KWARG__ALLOWED_REGISTRIES string
        (json.dumps([HOST1.upper(), "public.ecr.aws"]), False),
    ],
)
def test_allowed_registries_refuse_any_other_registry_before_any_call(emu, allowed, by_account):
    alias = {"registry": "registry.example.com", "registry_id": ACCT1, "region_name": "eu-west-1"}
    backend = make(emu, allowed_registries=allowed, connections={"other": HOST2, "alias": alias})
    assert backend.get_connection(ID1).password == emu.password(ACCT1)[0]
    assert backend.get_connection("ecr:public.ecr.aws").host == "public.ecr.aws"
    for conn_id in (ID2, "other", f"ecr:{ACCT2}.dkr.ecr.eu-west-1.amazonaws.com") + (() if by_account else ("alias",)):
        with pytest.raises(EcrConnectionLookupError) as err:
            backend.get_connection(conn_id)
        assert str(err.value).startswith(f"Connection {conn_id!r} names registry ")
        assert "not in the airflow-ecr secrets backend's 'allowed_registries': add that host or its account id" in (
            str(err.value)
        )
    if by_account:  # an account id allows its alias hosts too
        assert backend.get_connection("alias").host == "registry.example.com"
    assert {tuple(c["registry_ids"]) for c in ecr_calls(emu) if c["registry_ids"]} == {(ACCT1,)}


@pytest.mark.parametrize(
    "host",
    [f"{ACCT1}.dkr.ecr.eu-west-1.amazonaws.eu", f"{ACCT1}.dkr.ecr.eu-west-1.amazonaws.com.cn"],
)
def test_an_allowed_account_id_does_not_let_its_region_through_under_another_partitions_suffix(emu, host):
    """Fails on the old code: the account id matched, and a commercial-partition token went to that host."""
    backend = make(emu, allowed_registries=[ACCT1])
    with pytest.raises(EcrConnectionLookupError, match="is not an Amazon ECR registry host"):
        backend.get_connection(f"ecr:{host}")
    assert ecr_calls(emu) == []


def test_allowed_registries_mistakes_are_clear():
    for bad in (["https://x.example.com/path"], [""], [12], "a b"):
        with pytest.raises(ValueError, match="'allowed_registries' setting must be a 12-digit account id"):
            EcrDockerConnectionBackend(allowed_registries=bad)
    with pytest.raises(ValueError, match="'allowed_registries' setting is not valid JSON"):
        EcrDockerConnectionBackend(allowed_registries="[oops")
    assert EcrDockerConnectionBackend().allowed_registries is None
    assert EcrDockerConnectionBackend(allowed_registries=[]).allowed_registries == frozenset()


def test_tokens_come_from_memory_then_the_host_file_cache(emu, tmp_path):
    key = new_key()
    first = make(emu, key).get_connection(ID1).password
    assert make(emu, key).get_connection(ID1).password == first  # memory
    process_state.reset()  # as a new task process
    assert make(emu, key).get_connection(ID1).password == first  # host file
    assert len(ecr_calls(emu)) == 1
    assert len(list((tmp_path / "cache").glob("*.json"))) == 1


# -- credentials ---------------------------------------------------------------------------------


def test_boto3_default_chain_from_the_environment(emu, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAENVCHAIN0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    backend = EcrDockerConnectionBackend(endpoint_url=emu.url)
    assert backend.get_connection(ID1).login == "AWS"
    assert ecr_calls(emu)[0]["access_key_id"] == "AKIAENVCHAIN0001"


def test_profile_name_selects_a_shared_credentials_profile(emu, tmp_path, monkeypatch):
    (tmp_path / "no-aws-credentials").write_text(
        f"[ecrlab]\naws_access_key_id = AKIAPROFILE00001\naws_secret_access_key = {SECRET_KEY}\n"
    )
    backend = EcrDockerConnectionBackend(profile_name="ecrlab", endpoint_url=emu.url)
    assert backend.get_connection(ID2).host == HOST2
    assert ecr_calls(emu)[0]["access_key_id"] == "AKIAPROFILE00001"


def test_identity_separates_settings_but_never_holds_secrets():
    def identity(**settings: Any) -> str:
        return EcrTokenSource.from_settings(settings).identity

    base = {"aws_access_key_id": "AKIA1", "aws_secret_access_key": "s1", "endpoint_url": "http://e"}
    assert identity(**base) == identity(**{**base, "aws_secret_access_key": "s2", "aws_session_token": "t"})
    distinct = {
        identity(**base),
        identity(**{**base, "aws_access_key_id": "AKIA2"}),
        identity(**base, profile_name="p"),
        identity(**base, role_arn="arn:aws:iam::1:role/r"),
        identity(**{**base, "endpoint_url": "http://f"}),
        identity(**base, assume_role_kwargs={"ExternalId": "x"}),
    }
    assert len(distinct) == 6
    source = EcrTokenSource.from_settings({**base, "role_arn": "arn:aws:iam::1:role/r"}, name="the backend")
    assert "role/r" in source.description and "s1" not in source.description and "AKIA1" not in source.description


# -- the delegate --------------------------------------------------------------------------------


def test_delegate_answers_the_ids_variables_and_config_it_owns(emu, tmp_path):
    (tmp_path / "conns.json").write_text(json.dumps({"my_db": {"conn_type": "postgres", "host": "db", "login": "u"}}))
    (tmp_path / "vars.json").write_text(json.dumps({"greeting": "hi"}))
    delegate = {
        "backend": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "backend_kwargs": {
            "connections_file_path": str(tmp_path / "conns.json"),
            "variables_file_path": str(tmp_path / "vars.json"),
        },
    }
    for spec in (delegate, json.dumps(delegate)):
        backend = make(emu, delegate=spec)
        assert backend.get_connection("my_db").host == "db"
        assert "db" in backend.get_conn_value("my_db")
        assert backend.get_variable("greeting") == "hi"
        assert backend.get_connection("nope") is None and backend.get_variable("nope") is None
        assert asyncio.run(backend.aget_connection("my_db")).host == "db"
        assert asyncio.run(backend.aget_variable("greeting")) == "hi"
    assert ecr_calls(emu) == []
    # ECR ids stay ours.
    assert backend.get_connection(ID1).host == HOST1
    assert asyncio.run(backend.aget_connection(ID2)).host == HOST2


def test_delegate_by_class_path_environment_variables(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_MY_API", json.dumps({"conn_type": "http", "host": "api.example.com"}))
    monkeypatch.setenv("AIRFLOW_VAR_COLOR", "blue")
    backend = make(emu, delegate="airflow.secrets.environment_variables.EnvironmentVariablesBackend")
    assert backend.get_connection("my_api").host == "api.example.com"
    assert backend.get_variable("color") == "blue"
    assert backend.get_config("anything") is None
    assert ecr_calls(emu) == []


class _OldStyleBackend:
    """A delegate with the pre-3.2 signatures (no ``team_name``), as older custom backends have."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def get_connection(self, conn_id: str) -> None:
        self.seen.append(conn_id)

    def get_variable(self, key: str) -> str:
        return f"value-of-{key}"


def test_team_name_is_passed_only_to_delegates_that_take_it(emu):
    backend = make(emu)
    backend.delegate = _OldStyleBackend()
    assert backend.get_connection("x", team_name="team_a") is None
    assert backend.get_variable("k", team_name="team_a") == "value-of-k"
    assert backend.delegate.seen == ["x"]


def test_delegate_and_setting_mistakes_are_clear_and_do_not_echo_secrets():
    with pytest.raises(ValueError, match=r"cannot import its delegate 'no\.such\.Backend'"):
        EcrDockerConnectionBackend(delegate={"backend": "no.such.Backend"})
    with pytest.raises(ValueError, match="'delegate' setting must be") as err:
        EcrDockerConnectionBackend(delegate={"backend": "x.Y", "backend_kwargs": {"token": SECRET_KEY}, "oops": 1})
    assert SECRET_KEY not in str(err.value)
    with pytest.raises(ValueError, match="'connections' setting is not valid JSON"):
        EcrDockerConnectionBackend(connections="{not json")
    with pytest.raises(ValueError, match="'connections' setting must map"):
        EcrDockerConnectionBackend(connections={"x": 1})
    with pytest.raises(ValueError, match="min_token_life"):
        EcrDockerConnectionBackend(min_token_life="soon")


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "conn_id",
    [
        "ecr:",
        "ecr:foo",
        "ecr:12345.dkr.ecr.eu-west-1.amazonaws.com",
        f"ecr:{HOST1}/app/hello",
        "ecr:registry.lab.test",
        "ecr:111111111111.dkr.ecr.eu_west_1.amazonaws.com",
    ],
)
def test_malformed_id_under_the_scheme_names_the_id_and_the_fix(emu, conn_id):
    with pytest.raises(EcrConnectionLookupError) as err:
        make(emu).get_connection(conn_id)
    message = str(err.value)
    assert repr(conn_id) in message
    assert "'ecr:<12-digit account id>.dkr.ecr.<region>.amazonaws.com'" in message
    assert ecr_calls(emu) == []
    if AUTHORITATIVE:
        from airflow.sdk.exceptions import AirflowSecretsBackendAccessDenied

        # Task SDK 1.2.2+ re-raises it instead of trying the next backend: the task log shows the reason.
        assert isinstance(err.value, AirflowSecretsBackendAccessDenied)


def test_bad_friendly_mapping_names_the_id(emu):
    backend = make(emu, connections={"docker_bad": "registry.example.com", "docker_two": {"registry": HOST1, "x": 1}})
    with pytest.raises(EcrConnectionLookupError, match=r"'docker_bad' is mapped.*registry_id and region_name"):
        backend.get_connection("docker_bad")
    with pytest.raises(EcrConnectionLookupError, match=r"'docker_two'.*unknown keys \['x'\]"):
        backend.get_connection("docker_two")


def test_unknown_region_says_to_fix_the_region(emu):
    conn_id = "ecr:111111111111.dkr.ecr.xx-nope-1.amazonaws.com"
    with pytest.raises(EcrConnectionLookupError) as err:
        make(emu).get_connection(conn_id)
    message = str(err.value)
    assert message.startswith(f"Connection {conn_id!r} names registry")
    assert "'xx-nope-1', which is not a region where botocore knows ECR" in message
    assert "fix the region in the registry host" in message


def test_access_denied_names_the_id_the_action_and_the_settings(emu):
    emu.set_faults(deny=[ACCT2])
    with pytest.raises(EcrConnectionLookupError) as err:
        make(emu).get_connection(ID2)
    message = str(err.value)
    assert message.startswith(f"Connection {ID2!r} got no ECR token: The AWS identity of the airflow-ecr secrets")
    assert "is not allowed ecr:GetAuthorizationToken" in message
    assert SECRET_KEY not in message


def test_no_credentials_says_where_to_put_them(emu):
    with pytest.raises(EcrConnectionLookupError) as err:
        EcrDockerConnectionBackend(endpoint_url=emu.url).get_connection(ID1)
    assert "No AWS credentials found for the airflow-ecr secrets backend" in str(err.value)
    assert "in the backend's backend_kwargs" in str(err.value)
    assert ecr_calls(emu) == []


def test_no_secret_in_logs_or_errors(emu, caplog):
    caplog.set_level(logging.DEBUG)
    backend = make(emu)
    password = backend.get_connection(ID1).password
    emu.set_faults(deny=True)
    with pytest.raises(EcrConnectionLookupError) as err:
        backend.get_connection(ID2)
    for text in (caplog.text, str(err.value), repr(err.value)):
        assert password not in text and SECRET_KEY not in text
    assert "ECR login for 111111111111.dkr.ecr.eu-west-1.amazonaws.com" in caplog.text


# -- Airflow's secrets cache ---------------------------------------------------------------------


def test_tokens_shorter_than_airflows_cache_ttl_are_refused(emu, monkeypatch):
    monkeypatch.setenv("AIRFLOW__SECRETS__USE_CACHE", "True")
    monkeypatch.setenv("AIRFLOW__SECRETS__CACHE_TTL_SECONDS", "30")
    emu.configure(token_ttl=10)
    with pytest.raises(EcrConnectionLookupError) as err:
        make(emu).get_connection(ID1)
    assert "cache_ttl_seconds=30 with use_cache on" in str(err.value)
    assert "keep [secrets] cache_ttl_seconds below 5 s, or turn [secrets] use_cache off" in str(err.value)


def test_min_token_life_is_enforced_without_airflows_cache(emu):
    emu.configure(token_ttl=10)
    with pytest.raises(EcrConnectionLookupError, match="min_token_life=20\\): keep min_token_life below 5 s"):
        make(emu, min_token_life=20).get_connection(ID1)


@pytest.mark.parametrize("use_cache", [True, False])
def test_token_is_refreshed_when_a_cached_copy_could_outlive_it(emu, monkeypatch, use_cache):
    """Token life 5 s, Airflow cache TTL 2 s: a token with < 2.5 s left is replaced, if caching."""
    monkeypatch.setenv("AIRFLOW__SECRETS__USE_CACHE", str(use_cache))
    monkeypatch.setenv("AIRFLOW__SECRETS__CACHE_TTL_SECONDS", "2")
    monkeypatch.setenv("AIRFLOW__ECR__REFRESH_RATIO", "1.0")  # the token cache alone would keep it
    emu.configure(token_ttl=5, rotate_fraction=0.2)
    backend = make(emu)
    first = backend.get_connection(ID1).password
    time.sleep(2.8)
    second = backend.get_connection(ID1).password
    assert len(ecr_calls(emu)) == (2 if use_cache else 1)
    assert (second != first) is use_cache
    left = emu.password(ACCT1)[1] - time.time()
    assert second == emu.password(ACCT1)[0] and left > 0
    if use_cache:
        assert left >= 2.0


def test_through_airflows_own_dispatcher_and_secrets_cache(emu, monkeypatch):
    """Airflow's Connection lookup with [secrets] backend set and the DAG processor's cache on."""
    from airflow.models.connection import Connection

    try:
        from airflow.sdk import SecretCache
    except ImportError:  # Airflow 2
        from airflow.secrets.cache import SecretCache

    key = new_key()
    kwargs = {"endpoint_url": emu.url, "aws_access_key_id": key, "aws_secret_access_key": SECRET_KEY}
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", BACKEND_PATH)
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", json.dumps(kwargs))
    monkeypatch.setenv("AIRFLOW__SECRETS__USE_CACHE", "True")
    monkeypatch.setenv("AIRFLOW__SECRETS__CACHE_TTL_SECONDS", "2")
    monkeypatch.setenv("AIRFLOW__ECR__REFRESH_RATIO", "1.0")
    emu.configure(token_ttl=5, rotate_fraction=0.2)
    SecretCache.init()
    try:
        first = Connection.get_connection_from_secrets(ID1).password
        assert Connection.get_connection_from_secrets(ID1).password == first  # Airflow's cache
        time.sleep(2.8)  # the cached entry expired; the token has 2.2 s left, less than the cache TTL
        second = Connection.get_connection_from_secrets(ID1).password
        assert second != first and second == emu.password(ACCT1)[0]
        assert len(ecr_calls(emu)) == 2
    finally:
        SecretCache.reset()
        # init() started a multiprocessing manager process: stop what this test started.
        manager = getattr(SecretCache, "_SecretCache__manager", None)
        if manager is not None:
            manager.shutdown()
            SecretCache._SecretCache__manager = None


def _fail_unexpectedly(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError(f"unforeseen, quoting {SECRET_KEY}")


def test_an_unexpected_failure_is_one_sentence_without_its_text(emu, monkeypatch):
    monkeypatch.setattr(TokenCache, "get_one", _fail_unexpectedly)
    with pytest.raises(EcrConnectionLookupError) as info:
        make(emu).get_connection(ID1)
    message = str(info.value)
    assert message.startswith(f"Connection {ID1!r} could not be resolved: the airflow-ecr secrets backend failed ")
    assert "with RuntimeError at test_secrets_backend.py:" in message and "run 'airflow-ecr doctor'" in message
    assert SECRET_KEY not in message and message.count(". ") == 0 and info.value.__cause__ is None


@pytest.mark.parametrize("failure", ["malformed id", "unexpected"])
def test_errors_reach_the_caller_through_airflows_dispatcher(emu, monkeypatch, caplog, failure):
    from airflow.models.connection import Connection

    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", BACKEND_PATH)
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", json.dumps({"endpoint_url": emu.url}))
    if failure == "unexpected":
        monkeypatch.setattr(TokenCache, "get_one", _fail_unexpectedly)
    malformed = failure == "malformed id"
    conn_id, sentence = ("ecr:foo", "'ecr:foo' starts with 'ecr:'") if malformed else (ID1, "failed with RuntimeError")
    if AUTHORITATIVE:
        with pytest.raises(EcrConnectionLookupError, match=sentence):
            Connection.get_connection_from_secrets(conn_id)
    else:
        # Airflow 2.11 logs the backend's error with its traceback, then tries the next backend; Airflow
        # 3.0 and 3.1 log it at debug level only, so the backend logs it itself there.
        with pytest.raises(AirflowNotFoundException):
            Connection.get_connection_from_secrets(conn_id)
        errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
        assert any(sentence in caplog.handler.format(record) for record in errors)
    assert SECRET_KEY not in caplog.text


def test_airflows_broken_fernet_never_hides_the_connection(emu, monkeypatch, caplog):
    """
    cryptography 51 with a Fernet key, on Airflow 2.11 to 3.1: Airflow 3 tasks get the login anyway
    (built as the task SDK's Connection, which holds no ciphertext); Airflow 2.11, which has only its
    encrypting ORM model, says why in one sentence at error level after the login line, before
    Airflow's "isn't defined".
    """
    from airflow.models.connection import Connection

    break_fernet_like_cryptography_51(monkeypatch)
    key = new_key()
    kwargs = {"endpoint_url": emu.url, "aws_access_key_id": key, "aws_secret_access_key": SECRET_KEY}
    if AIRFLOW_3:
        from airflow.sdk.definitions.connection import Connection as TaskConnection

        conn = make(emu, key).get_connection(ID1)
        assert isinstance(conn, TaskConnection)
        assert (conn.host, conn.login, conn.password) == (HOST1, "AWS", emu.password(ACCT1)[0])
        return
    with pytest.raises(EcrConnectionLookupError) as info:
        make(emu, key).get_connection(ID1)
    message = str(info.value)
    assert message.startswith(f"Connection {ID1!r} cannot be built: Airflow 2.11")
    assert "cryptography " in message and "`pip install 'cryptography<51'`" in message
    assert "install Airflow with its constraints file" in message and message.count(". ") == 0

    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", BACKEND_PATH)
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", json.dumps(kwargs))
    caplog.clear()
    with caplog.at_level(logging.INFO), pytest.raises(AirflowNotFoundException):
        Connection.get_connection_from_secrets(ID1)
    lines = [(record.levelno, caplog.handler.format(record)) for record in caplog.records]
    login = next(i for i, (_, text) in enumerate(lines) if "ECR login for" in text)
    cause = next(i for i, (level, text) in enumerate(lines) if level >= logging.ERROR and "cryptography<51" in text)
    assert login < cause
    assert SECRET_KEY not in caplog.text and emu.password(ACCT1)[0] not in caplog.text


def test_airflow_builds_it_from_secrets_and_workers_configuration(emu, monkeypatch):
    from airflow.configuration import get_custom_secret_backend

    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND", BACKEND_PATH)
    monkeypatch.setenv("AIRFLOW__SECRETS__BACKEND_KWARGS", json.dumps({"connections": {"a": HOST1}}))
    backend = get_custom_secret_backend()
    assert isinstance(backend, EcrDockerConnectionBackend) and backend.connections == {"a": HOST1}
    if AIRFLOW_3:
        monkeypatch.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND", BACKEND_PATH)
        monkeypatch.setenv("AIRFLOW__WORKERS__SECRETS_BACKEND_KWARGS", json.dumps({"conn_id_prefix": "aws-ecr:"}))
        worker = get_custom_secret_backend(worker_mode=True)
        assert isinstance(worker, EcrDockerConnectionBackend)
        assert worker.owns(f"aws-ecr:{HOST1}") and not worker.owns(ID1)


def test_provider_info_lists_the_backend():
    assert get_provider_info()["secrets-backends"] == [BACKEND_PATH]
