"""
Airflow's own Fernet as cryptography 51 breaks it on Airflow 2.11 to 3.1, for unit tests.

With a Fernet key configured, Airflow 2.11 to 3.1's ``get_fernet()`` builds a ``MultiFernet`` and
sets ``is_encrypted`` on it; cryptography 51's ``MultiFernet`` is a Rust class that takes no new
attribute, so every connection password Airflow encrypts fails with ``AttributeError:
'...MultiFernet' object has no attribute 'is_encrypted'``. :func:`break_fernet_like_cryptography_51`
reproduces that in this process: a real key in ``AIRFLOW__CORE__FERNET_KEY``, cryptography's
``MultiFernet`` replaced by one that takes no attribute (named as the real one is), and, on Airflow
3.3 (whose ``get_fernet`` wraps the ``MultiFernet`` and survives), Airflow 2.11 to 3.1's
``get_fernet`` in its place.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import pytest
from cryptography import fernet as cryptography_fernet

_RealMultiFernet = cryptography_fernet.MultiFernet


class MultiFernet:
    """cryptography 51's ``MultiFernet`` as Airflow meets it: it encrypts, and takes no new attribute.

    Named as the Rust class is, so that Python's messages are the real ones word for word (reading a
    missing attribute cuts the name to 50 characters: ``'...fernet.MultiFer' object``).
    """

    __slots__ = ("_real",)

    def __init__(self, fernets: list[Any]) -> None:
        self._real = _RealMultiFernet(fernets)

    def encrypt(self, msg: bytes) -> bytes:
        return self._real.encrypt(msg)

    def decrypt(self, msg: bytes | str, ttl: int | None = None) -> bytes:
        return self._real.decrypt(msg, ttl)


MultiFernet.__name__ = "cryptography.hazmat.bindings._rust.fernet.MultiFernet"


def get_fernet() -> Any:
    """Airflow 2.11 to 3.1's ``get_fernet`` with a key configured (as ``airflow.models.crypto`` has it)."""
    from airflow.configuration import conf
    from cryptography.fernet import Fernet

    key = conf.get("core", "FERNET_KEY")
    fernet: Any = cryptography_fernet.MultiFernet([Fernet(part.encode("utf-8")) for part in key.split(",")])
    fernet.is_encrypted = True
    return fernet


def use_a_fernet_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    A real Fernet key in ``AIRFLOW__CORE__FERNET_KEY``, as every deployment has one, and Airflow's
    cached Fernet forgotten (Airflow 2.11 keeps the first one it built, key or none, per process).

    :param monkeypatch: the test's; everything is undone at its end.
    """
    monkeypatch.setenv("AIRFLOW__CORE__FERNET_KEY", cryptography_fernet.Fernet.generate_key().decode())
    crypto = importlib.import_module("airflow.models.crypto")
    if hasattr(crypto.get_fernet, "cache_clear"):
        # Airflow 3.3: a cache of the test's own; Airflow's, untouched, comes back after it.
        fresh = functools.cache(crypto.get_fernet.__wrapped__)
        for module in (crypto, importlib.import_module("airflow.models.connection")):
            monkeypatch.setattr(module, "get_fernet", fresh)
    else:
        monkeypatch.setattr(crypto, "_fernet", None)


def break_fernet_like_cryptography_51(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    Make Airflow's Fernet fail in this process as cryptography 51 makes it fail on Airflow 2.11 to 3.1.

    :param monkeypatch: the test's; everything is undone at its end.
    """
    use_a_fernet_key(monkeypatch)
    monkeypatch.setattr(cryptography_fernet, "MultiFernet", MultiFernet)
    crypto = importlib.import_module("airflow.models.crypto")
    if hasattr(crypto.get_fernet, "cache_clear"):
        # Airflow 3.3: a cached get_fernet that wraps the MultiFernet; stand in the older one.
        for module in (crypto, importlib.import_module("airflow.models.connection")):
            monkeypatch.setattr(module, "get_fernet", get_fernet)
