"""
No form of an ECR token in any log at any level: real boto3 over HTTP to the in-process emulator,
every logger at DEBUG, and Airflow's own secret masker.
"""

from __future__ import annotations

import base64
import importlib
import logging
import re
import string
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_ecr import _compat
from airflow_ecr.registry import parse_registry_host
from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount
from airflow_ecr.tokens.sources import EcrTokenSource

ACCOUNT, REGION = "111111111111", "eu-west-1"
HOSTS = {"ecr": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com", "ecr-public": "public.ecr.aws"}


@pytest.fixture(scope="module")
def emu() -> Iterator[EcrEmulator]:
    with EcrEmulator([EmulatedAccount(ACCOUNT, REGION)]) as emulator:
        yield emulator


@pytest.fixture
def source(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch) -> EcrTokenSource:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL_ECR_PUBLIC"):
        monkeypatch.delenv(name, raising=False)
    settings = {"endpoint_url": emu.url, "region_name": REGION}
    return EcrTokenSource.from_settings(
        {**settings, "aws_access_key_id": "AKIDLOGGINGTEST", "aws_secret_access_key": "not-a-secret"}
    )


class Everything(logging.Handler):
    """Every record of every logger, at DEBUG, as any handler of a deployment would get it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        formatter = logging.Formatter("%(name)s %(message)s")
        return "\n".join(formatter.format(record) for record in self.records)

    def names(self) -> set[str]:
        return {record.name for record in self.records}


@pytest.fixture
def everything() -> Iterator[Everything]:
    handler = Everything()
    root, botocore = logging.getLogger(), logging.getLogger("botocore")
    levels = root.level, botocore.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    botocore.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        botocore.setLevel(levels[1])


def forms_of(password: str) -> dict[str, str]:
    """What to look for, computed here rather than by the code under test."""
    token = base64.b64encode(f"AWS:{password}".encode()).decode()
    return {
        "password": password,
        "authorizationToken": token,
        "URL-encoded password": quote(password, safe=""),
        "URL-encoded authorizationToken": quote(token, safe=""),
    }


def found(text: str, password: str) -> list[str]:
    return [name for name, form in forms_of(password).items() if form in text]


def masker_redact(text: str) -> str:
    """``text`` as Airflow's secret masker (the one ``mask_secret`` feeds) writes it to a task log."""
    return str(masker_in_use().redact(text))


def masker_in_use() -> Any:
    """The secret masker that ``mask_secret`` feeds on this Airflow (found by a canary)."""
    canary = "airflow-ecr-masker-canary-7d1c2a"
    _compat.mask_secret(canary)
    homes = (
        _compat.mask_secret.__module__,
        "airflow.sdk._shared.secrets_masker",
        "airflow.sdk.execution_time.secrets_masker",
        "airflow._shared.secrets_masker",
        "airflow.utils.log.secrets_masker",
    )
    for home in homes:
        try:
            masker = importlib.import_module(home)._secrets_masker()
        except (ImportError, AttributeError):
            continue
        if canary not in str(masker.redact(canary)):
            return masker
    pytest.fail("cannot find the secret masker that mask_secret feeds on this Airflow", pytrace=False)


@pytest.mark.parametrize("service", ["ecr", "ecr-public"])
def test_no_form_of_the_token_in_any_log_at_debug(service: str, source: EcrTokenSource, everything: Everything) -> None:
    registry = parse_registry_host(HOSTS[service])
    token = next(iter(source.fetch([registry]).values()))
    text = everything.text()
    # botocore did log the call at DEBUG (the capture works, and botocore is not silenced wholesale)...
    assert "GetAuthorizationToken" in text and {"botocore.endpoint", "botocore.hooks"} <= everything.names()
    # ...but no form of the token, in any record of any logger.
    assert found(text, token.password) == [], [
        r.name for r in everything.records if found(r.getMessage(), token.password)
    ]


def test_other_botocore_responses_are_still_logged(source: EcrTokenSource, everything: Everything) -> None:
    registry = parse_registry_host(HOSTS["ecr"])
    source.fetch([registry])
    client = source.client("ecr", REGION)
    with pytest.raises(Exception, match="UnknownOperation"):
        client.describe_repositories()
    bodies = [r.getMessage() for r in everything.records if r.name == "botocore.parsers"]
    assert any("Response body" in body and "UnknownOperationException" in body for body in bodies), bodies


def test_every_form_of_the_token_is_masked_in_task_logs(source: EcrTokenSource) -> None:
    registry = parse_registry_host(HOSTS["ecr"])
    token = source.fetch([registry])[registry.registry_id]
    line = " | ".join(f"{name}={form}" for name, form in forms_of(token.password).items())
    assert found(masker_redact(line), token.password) == []


def test_a_cached_password_masks_every_form() -> None:
    """The cache re-masks a token it read from a file with ``mask(password)`` alone."""
    from airflow_ecr.tokens.token import mask

    password = "cachedpw+/=" + "x" * 40
    mask(password)
    line = " ".join(forms_of(password).values())
    assert found(masker_redact(line), password) == []


def test_the_quiet_parser_is_scoped_to_the_token_call_and_its_thread(everything: Everything) -> None:
    from airflow_ecr.tokens.token import token_response_unlogged

    parser = logging.getLogger("botocore.parsers")
    inside, done = threading.Event(), threading.Event()

    def token_call() -> None:
        with token_response_unlogged():
            parser.debug("Response body: from the token call")
            inside.set()
            done.wait(5)

    thread = threading.Thread(target=token_call)
    thread.start()
    assert inside.wait(5)
    parser.debug("Response body: another call, meanwhile")
    done.set()
    thread.join(5)
    parser.debug("Response body: after the token call")
    messages: list[Any] = [r.getMessage() for r in everything.records if r.name == "botocore.parsers"]
    assert messages == ["Response body: another call, meanwhile", "Response body: after the token call"]
    with token_response_unlogged():
        pass
    assert [type(f).__name__ for f in parser.filters].count("_TokenResponseFilter") == 1  # installed once


# -- what masking costs: short patterns, whatever the password's length ---------------------------
@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(alphabet=string.ascii_letters + string.digits + "+/=_-%", min_size=1, max_size=120),
        st.binary(min_size=1, max_size=300).map(lambda raw: base64.b64encode(raw).decode()),
        st.text(min_size=1, max_size=60),
    )
)
def test_the_mask_patterns_cover_every_form_of_any_password(password: str) -> None:
    from airflow_ecr.tokens.token import mask_patterns, secret_forms

    patterns = mask_patterns(password)
    replacer = re.compile("|".join(patterns))
    for form in secret_forms(password):
        assert any(re.fullmatch(pattern, form) for pattern in patterns), (form, patterns)
        # Masked in a log line: replaced by a mark the form cannot contain ("***" contains "*", a
        # password Hypothesis finds).
        mark = next(c for c in "\ue000\ue001" if c not in form)
        assert form not in replacer.sub(mark, f"before {form}\n"), (form, patterns)


def test_an_ecr_sized_password_costs_the_masker_a_few_short_patterns_once() -> None:
    """ECR's passwords are ~3,000 characters, their forms ~20,000: the masker's regex (compiled per
    new pattern, at a cost per character) grows by a few dozen characters, once per process."""
    from airflow_ecr.testing.emulator.model import registry_password
    from airflow_ecr.tokens.token import mask, mask_patterns

    masker_redact("warm-up of the masker")
    masker = masker_in_use()
    first, second = registry_password(2e9), registry_password(2e9)
    assert len(first) > 2500
    before = len(masker.replacer.pattern)
    mask(first)
    grown, replacer = len(masker.replacer.pattern) - before, masker.replacer
    mask(second)
    # (0 if an earlier test of this process masked an ECR token: the patterns are ECR's, not the token's.)
    assert grown < 120 and set(mask_patterns(first)) <= masker.patterns
    assert masker.replacer is replacer  # the second ECR token compiles nothing
    for password in (first, second):
        line = " | ".join(f"{name}={form}" for name, form in forms_of(password).items())
        assert found(masker_redact(line), password) == []


def test_the_supervisor_of_an_airflow_3_task_gets_every_exact_form(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisor masks an Airflow 3 task's logs and knows nothing of the task's masker."""
    if not _compat.is_airflow_3():
        pytest.skip("Airflow 2 tasks write their own logs: no supervisor")
    from airflow.sdk.execution_time import task_runner

    from airflow_ecr.tokens.token import mask, secret_forms

    class Supervisor:
        def __init__(self) -> None:
            self.values: list[Any] = []

        def send(self, message: Any) -> None:
            self.values.append(getattr(message, "value", None))

    supervisor = Supervisor()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", supervisor, raising=False)
    password = "supervised+/=" + "y" * 40
    mask(password)
    assert supervisor.values == [secret_forms(password)]
