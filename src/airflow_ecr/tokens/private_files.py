"""
The host cache's file rules that a process without Airflow applies too: where the cache lives by
default, what makes a file or directory private to this user (for the directory: the first rule it
breaks, as a problem code that a task's log and doctor each word), and how an entry is read.

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


if TYPE_CHECKING:
    # The problem codes of the cache directory: each is found by :func:`directory_problem` (every
    # use) or :func:`examine_directory` (doctor), and worded once per audience: a task's log
    # (:func:`airflow_ecr.tokens.store.log_message`) and doctor's report
    # (:func:`airflow_ecr.doctor.cache.report`). The facts a kind carries are listed beside it.
    ProblemKind = Literal[
        "cannot_examine",  # the directory cannot be examined: error
        "cannot_create",  # it is missing and cannot be created: error (a task's mkdir), or parent (not writable)
        "foreign_link",  # it is a symbolic link of another user: uid (the link's)
        "dangling_link",  # it is a symbolic link to nothing: target
        "not_directory",  # it is something else: uid, mode
        "foreign_owner",  # it belongs to another user: uid, mode
        "open_mode",  # other users may use it: uid, mode
        "not_writable",  # this user cannot write it (doctor only): uid, mode
        "exposed_files",  # entries readable by others, which every read ignores (doctor only): count
    ]


class DirectoryProblem:
    """
    The first rule of the cache directory that fails, as data: its ``kind`` (a problem code, see
    ``ProblemKind`` in the source) and the facts behind it (the fields a kind does not use stay empty).

    A plain class, not a dataclass: this module stays at the cost of ``os`` and ``stat``.
    """

    __slots__ = ("count", "error", "kind", "mode", "parent", "path", "target", "uid")

    def __init__(
        self,
        kind: ProblemKind,
        path: str | os.PathLike[str],
        *,
        uid: int = -1,
        mode: int = 0,
        target: str = "",
        parent: str = "",
        error: str = "",
        count: int = 0,
    ) -> None:
        self.kind = kind
        self.path = os.fspath(path)
        self.uid = uid
        self.mode = mode
        self.target = target
        self.parent = parent
        self.error = error
        self.count = count

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DirectoryProblem) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return f"DirectoryProblem({self.kind!r}, {self.path!r}, uid={self.uid}, mode={self.mode:o})"


def directory_problem(path: str | os.PathLike[str]) -> tuple[DirectoryProblem | None, os.stat_result]:
    """
    The cache directory's rules, walked once on every use: :func:`foreign_link`, then that what it
    points to is a directory, then :func:`private_problem` of it. Returns the first that fails
    (None: none) and the ``stat`` of the directory (of the link, for ``foreign_link``).

    :param path: the cache directory.
    :raises OSError: when it cannot be examined (``FileNotFoundError``: it does not exist).
    """
    link = os.lstat(path)
    if foreign_link(link):
        return DirectoryProblem("foreign_link", path, uid=link.st_uid), link
    # One system call unless it is a link: the cache checks its directory on every use.
    info = os.stat(path) if stat.S_ISLNK(link.st_mode) else link
    kind: ProblemKind | None = "not_directory" if not stat.S_ISDIR(info.st_mode) else private_problem(info)
    if kind is None:
        return None, info
    return DirectoryProblem(kind, path, uid=info.st_uid, mode=stat.S_IMODE(info.st_mode)), info


def examine_directory(path: str | os.PathLike[str]) -> tuple[DirectoryProblem | None, dict[str, Any]]:
    """
    The cache directory as doctor reports it, creating nothing: :func:`directory_problem`, then
    what only a report asks (whether a missing directory can be created, whether it is writable,
    how many entries there are and whether any is open to others).

    :param path: the cache directory.
    :returns: the first problem (None: the cache can work there), and the facts found on the way:
        ``symlink_to`` and ``link_uid`` for a link, ``exists``, ``uid`` and ``mode``, ``entries``.
    """
    facts: dict[str, Any] = {}
    try:
        link = os.lstat(path)
        if stat.S_ISLNK(link.st_mode):
            facts.update(symlink_to=os.path.realpath(path), link_uid=link.st_uid)
    except OSError:
        pass  # directory_problem says why
    try:
        problem, info = directory_problem(path)
    except FileNotFoundError:
        if "symlink_to" in facts:
            return DirectoryProblem("dangling_link", path, target=facts["symlink_to"]), facts
        facts["exists"] = False
        parent = next((p for p in _parents(os.fspath(path)) if os.path.exists(p)), "/")
        if os.access(parent, os.W_OK | os.X_OK):
            return None, facts  # created (0700) on first use
        return DirectoryProblem("cannot_create", path, parent=parent), facts
    except OSError as err:
        return DirectoryProblem("cannot_examine", path, error=err.strerror or str(err)), facts
    if problem is not None and problem.kind == "foreign_link":
        return problem, facts
    facts.update(exists=True, uid=info.st_uid, mode=stat.S_IMODE(info.st_mode))
    if problem is not None:
        return problem, facts
    if not os.access(path, os.W_OK | os.X_OK):
        return DirectoryProblem("not_writable", path, uid=info.st_uid, mode=facts["mode"]), facts
    try:
        with os.scandir(path) as scan:
            entries = [entry for entry in scan if entry.name.endswith(".json")]
    except OSError:
        entries = []  # not listable: each read finds its entry by name
    facts["entries"] = len(entries)
    exposed = sum(1 for entry in entries if _mode_or_zero(entry) & 0o077)
    return (DirectoryProblem("exposed_files", path, count=exposed) if exposed else None), facts


def _parents(path: str) -> list[str]:
    """The directories above ``path``, nearest first (``pathlib``'s ``parents`` of an absolute path)."""
    found = []
    path = os.path.normpath(path)
    while (parent := os.path.dirname(path) or ".") != path:
        found.append(parent)
        path = parent
    return found


def _mode_or_zero(entry: os.DirEntry[str]) -> int:
    try:
        return stat.S_IMODE(entry.stat().st_mode)
    except OSError:
        return 0


def private_directory(path: str | os.PathLike[str]) -> bool:
    """
    Whether ``path`` is an existing directory with no :func:`directory_problem` (a reader's check:
    it creates nothing and logs nothing).

    :param path: the cache directory.
    """
    try:
        return directory_problem(path)[0] is None
    except OSError:
        return False


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
