"""
Throttling ridden out (issue 15, part 2): the ``[ecr]`` retry options of the token call, how they
reach botocore (and that a connection's ``config_kwargs`` retries win), and the ECR emulator's rate
limit (a token bucket per caller account and region), all over real HTTP with real boto3 against the
in-process emulator. botocore's backoff sleeps are recorded instead of slept (a fake on top of the
real retry handler), so the attempts and the waits botocore chose are seen without waiting them.
"""

from __future__ import annotations

import json
import time
import types
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from airflow_ecr import settings
from airflow_ecr.exceptions import EcrConfigurationError, EcrServiceError
from airflow_ecr.provider_info import get_provider_info
from airflow_ecr.registry import parse_registry_host
from airflow_ecr.testing.emulator import EcrEmulator, EmulatedAccount, EmulatorClient, load_config
from airflow_ecr.testing.emulator.bucket import ECR_BUCKET_CAPACITY, ECR_BUCKET_REFILL, TokenBucket
from airflow_ecr.tokens.sources import EcrTokenSource, with_token_retries

ACCOUNT, REGION, OTHER_REGION = "111111111111", "eu-west-1", "us-east-1"
REGISTRY = parse_registry_host(f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com")


@pytest.fixture(scope="module")
def emu() -> Iterator[EcrEmulator]:
    with EcrEmulator([EmulatedAccount(ACCOUNT, REGION), EmulatedAccount(ACCOUNT, OTHER_REGION)]) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _clean(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECR", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    for option in ("TOKEN_RETRY_MODE", "TOKEN_MAX_ATTEMPTS", "REFRESH_JITTER"):
        monkeypatch.delenv(f"AIRFLOW__ECR__{option}", raising=False)
    emu.reset()
    yield
    emu.reset()
    emu.configure(bucket_capacity=ECR_BUCKET_CAPACITY, bucket_refill=ECR_BUCKET_REFILL)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The backoff waits botocore's retry handler asks for (recorded, not slept)."""
    import botocore.endpoint

    asked: list[float] = []
    monkeypatch.setattr(botocore.endpoint, "time", types.SimpleNamespace(sleep=asked.append))
    return asked


def connection(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, key: str, **extra: Any) -> EcrTokenSource:
    """A source for an Airflow AWS connection to the emulator, signing with ``key``."""
    conn = {"conn_type": "aws", "login": key, "password": "not-a-secret", "extra": {"region_name": REGION, **extra}}
    conn["extra"]["endpoint_url"] = emu.url
    monkeypatch.setenv("AIRFLOW_CONN_AWS_THROTTLE", json.dumps(conn))
    return EcrTokenSource.from_connection("aws_throttle")


def attempts(emu: EcrEmulator, key: str) -> list[str]:
    return [c["outcome"] for c in emu.calls() if c["access_key_id"] == key]


# -- [ecr] options ------------------------------------------------------------------------------
def test_the_defaults_survive_a_cold_fleet_within_a_bounded_wait() -> None:
    retries = settings.token_retries()
    assert (retries.mode, retries.max_attempts) == ("standard", 7)
    assert retries.botocore_retries == {"mode": "standard", "total_max_attempts": 7}
    # botocore's throttling waits: up to 1, 2, 4, 8, 16, 20 s: 51 s in all, below the lock timeout.
    assert retries.wait_bound == 51 < settings.DEFAULT_LOCK_TIMEOUT
    assert [settings.token_retry_wait_bound(n) for n in (1, 2, 3, 8)] == [0, 1, 3, 71]


def test_the_options_are_read_from_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__TOKEN_RETRY_MODE", "Adaptive")
    monkeypatch.setenv("AIRFLOW__ECR__TOKEN_MAX_ATTEMPTS", " 12 ")
    assert settings.token_retries() == settings.TokenRetries("adaptive", 12)
    monkeypatch.setenv("AIRFLOW__ECR__REFRESH_JITTER", "0")
    assert settings.ecr_settings().refresh_jitter == 0


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("TOKEN_MAX_ATTEMPTS", "0", "token_max_attempts must be a whole number from 1 to 30, got '0': set e.g. 7."),
        ("TOKEN_MAX_ATTEMPTS", "31", "token_max_attempts must be a whole number from 1 to 30"),
        ("TOKEN_MAX_ATTEMPTS", "2.5", "token_max_attempts must be a whole number"),
        ("TOKEN_MAX_ATTEMPTS", "many", "token_max_attempts must be a whole number"),
        ("TOKEN_RETRY_MODE", "legacy", "token_retry_mode must be one of standard, adaptive, got 'legacy'"),
        ("REFRESH_JITTER", "1", "refresh_jitter must be in [0, 1), got 1.0: set e.g. 0.1, or 0 for none."),
    ],
)
def test_a_bad_option_is_one_sentence_naming_it(monkeypatch: pytest.MonkeyPatch, option: str, value: str, says: str):
    monkeypatch.setenv(f"AIRFLOW__ECR__{option}", value)
    read = settings.ecr_settings if option == "REFRESH_JITTER" else settings.token_retries
    with pytest.raises(EcrConfigurationError) as err:
        read()
    assert says in str(err.value) and "\n" not in str(err.value)


def test_provider_info_declares_the_options_with_the_settings_defaults() -> None:
    options = get_provider_info()["config"]["ecr"]["options"]
    assert options["token_retry_mode"]["default"] == settings.DEFAULT_TOKEN_RETRY_MODE
    assert int(options["token_max_attempts"]["default"]) == settings.DEFAULT_TOKEN_MAX_ATTEMPTS
    assert float(options["refresh_jitter"]["default"]) == settings.DEFAULT_REFRESH_JITTER
    assert "51 s at most" in options["token_max_attempts"]["description"]


# -- the retry policy, as botocore applies it --------------------------------------------------------
def test_with_token_retries_yields_to_any_retries_the_config_has() -> None:
    ours = settings.TokenRetries("standard", 7)
    assert with_token_retries(None, ours).retries == {"mode": "standard", "total_max_attempts": 7}
    kept = with_token_retries({"read_timeout": 5}, ours)
    assert kept.read_timeout == 5 and kept.retries == {"mode": "standard", "total_max_attempts": 7}
    theirs = with_token_retries(Config(retries={"mode": "legacy", "max_attempts": 1}), ours)
    assert theirs.retries == {"mode": "legacy", "max_attempts": 1}


def test_a_throttled_token_call_retries_seven_times_with_full_jitter_then_fails_clearly(
    emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, waits: list[float]
) -> None:
    source = connection(emu, monkeypatch, "THROTTLEDEFAULT")
    emu.set_faults(throttle=50)
    with pytest.raises(EcrServiceError) as err:
        source.fetch([REGISTRY])
    assert attempts(emu, "THROTTLEDEFAULT") == ["ThrottlingException"] * 7
    assert "ThrottlingException, 7 attempt(s) with backoff" in str(err.value)
    # Full jitter under botocore's caps (1, 2, 4, 8, 16, 20 s): bounded, and not all at the cap.
    caps = [1, 2, 4, 8, 16, 20]
    assert len(waits) == 6 and all(0 <= w <= cap for w, cap in zip(waits, caps, strict=True)), waits
    assert sum(waits) <= settings.token_retry_wait_bound(7) and len(set(waits)) == 6


def test_a_throttled_token_call_succeeds_on_a_later_attempt(
    emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, waits: list[float]
) -> None:
    source = connection(emu, monkeypatch, "THROTTLEFIVE")
    emu.set_faults(throttle=5)
    assert source.fetch([REGISTRY])[ACCOUNT].username == "AWS"
    assert attempts(emu, "THROTTLEFIVE") == ["ThrottlingException"] * 5 + ["ok"]
    assert len(waits) == 5


def test_the_options_set_the_attempts_and_the_mode(
    emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, waits: list[float]
) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__TOKEN_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("AIRFLOW__ECR__TOKEN_RETRY_MODE", "adaptive")
    adaptive = connection(emu, monkeypatch, "THROTTLEADAPTIVE").client("ecr", REGION)
    assert adaptive.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 3}
    # (adaptive mode's own rate limiter would really sleep: the attempts are counted in standard mode)
    monkeypatch.setenv("AIRFLOW__ECR__TOKEN_RETRY_MODE", "standard")
    source = connection(emu, monkeypatch, "THROTTLETHREE")
    emu.set_faults(throttle=50)
    with pytest.raises(EcrServiceError, match="3 attempt"):
        source.fetch([REGISTRY])
    assert attempts(emu, "THROTTLETHREE") == ["ThrottlingException"] * 3
    # STS (doctor's identity check) keeps botocore's own policy: only the token call is ours.
    assert source.client("sts", REGION).meta.config.retries != {"mode": "standard", "total_max_attempts": 3}


@pytest.mark.parametrize("kind", ["connection", "settings"])
def test_the_connections_config_kwargs_retries_win_over_the_options(
    emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch, waits: list[float], kind: str
) -> None:
    monkeypatch.setenv("AIRFLOW__ECR__TOKEN_MAX_ATTEMPTS", "9")
    extra = {"config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": 2}, "read_timeout": 7}}
    key = f"THROTTLEWINS{kind.upper()}"
    if kind == "connection":
        source = connection(emu, monkeypatch, key, **extra)
    else:  # the secrets backend's AWS settings
        aws = {"region_name": REGION, "endpoint_url": emu.url, "aws_access_key_id": key}
        source = EcrTokenSource.from_settings({**aws, "aws_secret_access_key": "not-a-secret", **extra})
    client = source.client("ecr", REGION)
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 2}
    assert client.meta.config.read_timeout == 7
    emu.set_faults(throttle=50)
    with pytest.raises(EcrServiceError, match="2 attempt"):
        source.fetch([REGISTRY])
    assert attempts(emu, key) == ["ThrottlingException"] * 2


def test_a_fips_registry_keeps_the_retry_policy(emu: EcrEmulator, monkeypatch: pytest.MonkeyPatch) -> None:
    source = connection(emu, monkeypatch, "THROTTLEFIPS")
    config = source.client("ecr", REGION, fips=True).meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 7} and config.use_fips_endpoint


# -- the emulator's rate limit -------------------------------------------------------------------
def test_the_bucket_refills_at_its_rate_up_to_its_capacity() -> None:
    bucket = TokenBucket.full(3, 2.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.level(100.4) == pytest.approx(0.8) and not bucket.take(100.4)
    assert bucket.take(100.5) and not bucket.take(100.5)
    assert bucket.level(1000.0) == 3  # never above the capacity
    bucket.set_level(0, 1000.0)
    assert not bucket.take(1000.0) and bucket.take(1000.5)


def ecr(emu: EcrEmulator, key: str, region: str = REGION) -> Any:
    """A plain boto3 ECR client to the emulator, one attempt per call (each call is one answer)."""
    return boto3.client(
        "ecr",
        region_name=region,
        endpoint_url=emu.url,
        aws_access_key_id=key,
        aws_secret_access_key="not-a-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


def outcome(client: Any) -> str:
    try:
        client.get_authorization_token()
        return "ok"
    except ClientError as err:
        status = err.response["ResponseMetadata"]["HTTPStatusCode"]
        return f"{err.response['Error']['Code']} {status}"


def test_by_default_the_emulator_has_ecrs_bucket(emu: EcrEmulator) -> None:
    admin = EmulatorClient(emu.url, token=emu.admin_token)
    config = admin.config()
    assert (config["bucket_capacity"], config["bucket_refill"]) == (200, 20.0)
    client = ecr(emu, "BUCKETDEFAULT")
    started = time.monotonic()
    got = [outcome(client) for _ in range(240)]
    elapsed = time.monotonic() - started
    # 200 at once, then 20 per second: in `elapsed` seconds at most 200 + 20 * elapsed answers.
    assert got.count("ok") <= 200 + 20 * elapsed + 1, (got.count("ok"), elapsed)
    assert got[:200] == ["ok"] * 200 and "ThrottlingException 400" in got
    assert set(got) == {"ok", "ThrottlingException 400"}


def test_a_shrunk_bucket_throttles_per_account_and_region_and_refills(emu: EcrEmulator) -> None:
    admin = EmulatorClient(emu.url, token=emu.admin_token)
    # One call back per 100 s: nothing refills while the calls below run, however slow the machine
    # (the exact refill arithmetic is the pure test above).
    admin.config(bucket_capacity=3, bucket_refill=0.01)
    one, two, elsewhere = ecr(emu, "BUCKETKEYONE"), ecr(emu, "BUCKETKEYTWO"), ecr(emu, "BUCKETKEYONE", OTHER_REGION)
    # Two keys of one account share its bucket in a region; another region has its own.
    assert [outcome(one), outcome(two), outcome(one), outcome(two)] == ["ok", "ok", "ok", "ThrottlingException 400"]
    assert outcome(elsewhere) == "ok"
    levels = admin.buckets()
    assert levels[f"{ACCOUNT}/{REGION}"]["tokens"] < 1 and levels[f"{ACCOUNT}/{OTHER_REGION}"]["tokens"] >= 1
    admin.config(bucket_refill=20)  # new buckets, refilling at ECR's rate
    admin.buckets(level=0)
    time.sleep(0.1)  # at least two calls back by now
    assert outcome(one) == "ok"
    admin.config(bucket_refill=0.01)
    admin.reset()  # a reset fills the buckets again
    assert [outcome(one) for _ in range(3)] == ["ok"] * 3
    admin.buckets(level=0)  # drained, as by another deployment of the account
    assert outcome(one) == outcome(elsewhere) == "ThrottlingException 400"
    calls = [c for c in emu.calls() if c["outcome"] == "ThrottlingException"]
    assert calls and all(c["access_key_id"] in ("BUCKETKEYONE", "BUCKETKEYTWO") for c in calls)


def test_capacity_zero_turns_the_limit_off_and_bad_values_are_refused(emu: EcrEmulator) -> None:
    admin = EmulatorClient(emu.url, token=emu.admin_token)
    admin.config(bucket_capacity=0)
    client = ecr(emu, "BUCKETOFF")
    assert {outcome(client) for _ in range(5)} == {"ok"}
    for body in ({"bucket_capacity": -1}, {"bucket_refill": 0}, {"bucket_capacity": 2.5}):
        with pytest.raises(urllib.error.HTTPError) as err:
            admin.config(**body)
        assert err.value.code == 400
    with pytest.raises(urllib.error.HTTPError) as err:
        admin.buckets(level=1)  # the limit is off: nothing to drain
    assert err.value.code == 400 and "rate limit is off" in err.value.read().decode()
    request = urllib.request.Request(  # noqa: S310 - loopback
        f"{emu.url}/_emulator/buckets",
        data=b'{"lvl": 0}',
        headers={"Authorization": f"Bearer {emu.admin_token}"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=5)
    assert err.value.code == 400


def test_the_throttle_switch_still_counts_down_beside_the_bucket(emu: EcrEmulator) -> None:
    EmulatorClient(emu.url, token=emu.admin_token).faults(throttle=2)
    client = ecr(emu, "BUCKETSWITCH")
    assert [outcome(client) for _ in range(3)] == ["ThrottlingException 400"] * 2 + ["ok"]


def test_the_command_line_config_takes_the_bucket(tmp_path: Any) -> None:
    path = tmp_path / "emulator.json"
    path.write_text(json.dumps({"accounts": [{"account_id": ACCOUNT, "region": REGION}], "bucket_capacity": 10}))
    accounts, kwargs = load_config(path)
    assert kwargs == {"bucket_capacity": 10}
    emulator = EcrEmulator(accounts, **kwargs)
    assert emulator.config()["bucket_capacity"] == 10
