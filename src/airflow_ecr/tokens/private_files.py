"""
The host cache's file rules that a process without Airflow applies too: where the cache lives by
default, what makes a file or directory private to this user, and how an entry is read.

Kept apart from :mod:`airflow_ecr.tokens.store` (which imports them) so that the credential helper's
warm ``get`` (:mod:`airflow_ecr.credential_helper.warm`) reads the same cache under the same rules at
the cost of two standard modules (``os``, ``stat``): it runs once per ``docker pull``. Even ``json``
is imported only for what :func:`loads_flat` does not read (``json`` brings ``re`` and ``enum``: 4 to
6 ms of a warm ``get`` on a 2-core worker, where the whole Go helper takes about 10).
"""

from __future__ import annotations

import os
import stat

# typing.TYPE_CHECKING without importing typing (see airflow_ecr/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

CACHE_DIR_NAME = "airflow-ecr"
# Entries are a few hundred bytes (a token is about 3 kB); anything longer than this is not one of ours.
MAX_ENTRY_SIZE = 64 * 1024
# Entries and locks are never opened through a symbolic link (only the owner can place one in the
# private directory, but a link there could point anywhere, and O_CREAT would create its target).
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


def default_cache_path() -> str:
    """
    The host cache's directory unless ``[ecr] cache_dir`` names one: ``$XDG_CACHE_HOME/airflow-ecr``,
    or ``~/.cache/airflow-ecr`` (a string: ``pathlib`` would cost the helper's warm get a millisecond).
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, CACHE_DIR_NAME)


def private_problem(info: os.stat_result) -> Literal["foreign_owner", "open_mode"] | None:
    """The rule every use of the cache directory applies: it must be this user's, and private."""
    if info.st_uid != os.geteuid():
        return "foreign_owner"
    if info.st_mode & 0o077:
        return "open_mode"
    return None


def foreign_link(link: os.stat_result) -> bool:
    """
    The rule for a cache directory that is a symbolic link (``lstat`` of it): the link must be this
    user's, as its target must be (checked by :func:`private_problem`). Whoever owns the link
    chooses where tokens are written and read from.
    """
    return stat.S_ISLNK(link.st_mode) and link.st_uid != os.geteuid()


def directory_problem(
    path: str | os.PathLike[str],
) -> tuple[Literal["foreign_link", "foreign_owner", "open_mode"] | None, os.stat_result]:
    """
    The cache directory's rules, walked once: :func:`foreign_link`, then :func:`private_problem` of
    what it points to. Returns the problem (None: none) and the ``stat`` of the directory.

    :param path: the cache directory.
    :raises OSError: when it cannot be examined (``FileNotFoundError``: it does not exist).
    """
    link = os.lstat(path)
    if foreign_link(link):
        return "foreign_link", link
    # One system call unless it is a link: the cache checks its directory on every use.
    info = os.stat(path) if stat.S_ISLNK(link.st_mode) else link
    return private_problem(info), info


def private_directory(path: str | os.PathLike[str]) -> bool:
    """
    Whether ``path`` is an existing directory with no :func:`directory_problem` (a reader's check:
    it creates nothing and logs nothing).

    :param path: the cache directory.
    """
    try:
        problem, info = directory_problem(path)
    except OSError:
        return False
    return problem is None and stat.S_ISDIR(info.st_mode)


def read_private_json(path: str | os.PathLike[str]) -> Any:
    """
    The JSON in ``path`` if the file is private to this user, else None.

    :param path: the entry (never followed if it is a symbolic link).
    :raises FileNotFoundError: when there is no such entry.
    :raises OSError, ValueError: when it cannot be read or is not JSON.
    """
    # os.open/os.read, not open(): a process reads these files once, and the buffered text layer
    # costs more there than the read itself.
    fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    try:
        if private_problem(os.fstat(fd)) is not None:
            return None
        data = os.read(fd, MAX_ENTRY_SIZE)
    finally:
        os.close(fd)
    return loads_flat(data)


def loads_flat(data: bytes) -> Any:
    """
    ``json.loads(data)``, without importing ``json`` for what the cache writes: one flat object of
    strings without escapes and numbers (``json.dump``'s output with its default separators). Any
    other text goes to ``json.loads``, so the answer is always the JSON parser's.

    :param data: the file's bytes.
    :raises ValueError: when it is not JSON.
    """
    text = data.decode()
    flat = _flat_object(text)
    if flat is not None:
        return flat
    import json

    return json.loads(text)


def _flat_object(text: str) -> dict[str, Any] | None:
    """``{"k": "v", "n": 1.5}`` as a dict; None for anything else (escapes, nesting, literals, spacing)."""
    if not (text.startswith('{"') and text.endswith("}")) or "\\" in text:
        return None
    result: dict[str, Any] = {}
    for item in text[1:-1].split(", "):
        key, colon, value = item.partition('": ')
        if not colon or not key.startswith('"') or '"' in key[1:]:
            return None
        if value.startswith('"'):
            if len(value) < 2 or not value.endswith('"') or '"' in value[1:-1]:
                return None
            result[key[1:]] = value[1:-1]
            continue
        if not value or value.strip("0123456789.-+eE"):
            return None
        try:
            result[key[1:]] = int(value) if value.lstrip("-").isdigit() else float(value)
        except ValueError:
            return None
        if result[key[1:]] != result[key[1:]] or value.lower().lstrip("-") in ("inf", "infinity"):
            return None  # float() reads NaN and Infinity, which JSON does not have
    return result
