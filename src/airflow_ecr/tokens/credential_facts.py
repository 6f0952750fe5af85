"""
Which AWS credentials are in use, as non-secret facts: the part of the cache key that names an identity.

boto3's default chain picks its credentials from the environment, the shared credentials and config
files, a web-identity token file or a container credentials endpoint. Two processes whose
environments *look* the same (every EKS Pod Identity pod has the same endpoint URI and token path)
can still hold different identities, so the facts come from what those places contain: the access
key id, each profile's non-secret fields, and the issuer, subject and audience of a web-identity or
Pod Identity token. Never a secret: secret keys and session tokens are not read, and a token that is
not a JWT enters as its SHA-256.

Cheap on purpose (a warm cache hit computes them in every new task process): a few small local
files, no network, no boto3. Tokens rotate (web identity and Pod Identity hourly) but keep their
subject, so the facts, and the cache key, stay the same across a rotation.

Not covered, because nothing local names them: instance-profile credentials (IMDS) and other
host-wide sources (a Google federation of the host) are one identity per host; a cache directory
shared by several hosts must not rely on them.
"""

from __future__ import annotations

# typing.TYPE_CHECKING without importing typing or collections.abc: the credential helper's warm
# get computes these facts in a process of its own, per docker pull (see airflow_ecr/__init__.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    # A reader of small files: the bytes, or None when the file is missing or unreadable.
    FileReader = Callable[[str], "bytes | None"]

# Token files and shared AWS files are a few KiB; more is read no further (its hash still counts).
MAX_FILE_BYTES = 256 * 1024

# Environment variables whose value names (or selects) the credentials, compared as they are.
ENV_FACTS = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_ENDPOINT_URL_ECR_PUBLIC",
    "AWS_ENDPOINT_URL_STS",
)
# Profile fields that name an identity without being a secret (aws_secret_access_key and
# aws_session_token are never read).
_PROFILE_FIELDS = (
    "aws_access_key_id",
    "role_arn",
    "source_profile",
    "credential_source",
    "web_identity_token_file",
    "role_session_name",
    "mfa_serial",
    "sso_session",
    "sso_account_id",
    "sso_role_name",
    "sso_start_url",
    "sso_region",
    "endpoint_url",
)
# Profile fields that may carry a secret in their text: only their hash enters.
_HASHED_PROFILE_FIELDS = ("credential_process", "external_id")
_MAX_TOKEN_FILES = 8

Fact = tuple[str, ...]


def read_small_file(path: str) -> bytes | None:
    """
    The first :data:`MAX_FILE_BYTES` of ``path``, or None when it is missing or unreadable.

    :param path: the file.
    """
    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_FILE_BYTES)
    except (OSError, ValueError):
        return None


def _sha256(data: bytes | str) -> str:
    import hashlib  # here: loading OpenSSL costs the credential helper's warm get 2 ms when unused

    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def token_facts(token: bytes | str | None) -> Fact:
    """
    What names a bearer token without revealing it: a JWT's ``iss``, ``sub`` and ``aud``, else its SHA-256.

    The signature is not checked: the claims only tell identities apart, they grant nothing. They
    survive a rotation (a new ``iat``/``exp``, same subject); other claims (such as the pod of a
    Kubernetes token) are left out so that pods of one service account share their tokens.

    :param token: the token's text or bytes; None when it could not be read.
    """
    if token is None:
        return ("unreadable",)
    raw = token.strip() if isinstance(token, bytes) else token.strip().encode()
    parts = raw.split(b".")
    if len(parts) == 3:
        # Here, not at the top: most workers have no token file, and a warm credential-helper get
        # computes these facts in a process of its own.
        import base64
        import binascii
        import json

        try:
            claims = json.loads(base64.urlsafe_b64decode(parts[1] + b"=" * (-len(parts[1]) % 4)))
        except (binascii.Error, ValueError):
            claims = None
        if isinstance(claims, dict) and claims.get("sub") is not None:
            aud = claims.get("aud")
            audience = ",".join(sorted(map(str, aud))) if isinstance(aud, list) else str(aud)
            return ("jwt", str(claims.get("iss")), str(claims["sub"]), audience)
    return ("sha256", _sha256(raw))


def token_file_facts(path: str, read: FileReader) -> Fact:
    """
    :func:`token_facts` of the token in ``path``, with the path.

    :param path: the token file.
    :param read: the file reader.
    """
    return ("token-file", path, *token_facts(read(path)))


def _expand(path: str, environ: Mapping[str, str]) -> str:
    """``~`` as botocore expands it (``HOME``), without touching the process environment."""
    if path == "~" or path.startswith("~/"):
        home = environ.get("HOME")
        if home:
            return home + path[1:]
    return path


def shared_file_paths(environ: Mapping[str, str]) -> tuple[str, str]:
    """
    The shared credentials file and config file boto3 reads, as botocore finds them.

    :param environ: the environment.
    """
    credentials = environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"
    config = environ.get("AWS_CONFIG_FILE") or "~/.aws/config"
    return _expand(credentials, environ), _expand(config, environ)


def profile_file_facts(kind: str, content: bytes | None) -> list[Fact]:
    """
    The non-secret fields of every profile (and ``sso-session``) in one shared AWS file.

    Every profile counts, not only the selected one: a connection's ``profile_name`` or a
    ``source_profile`` chain may pick any of them, and the facts must be known before the
    connection is read.

    :param kind: ``credentials`` or ``config``.
    :param content: the file's bytes; None when it is missing.
    """
    if content is None:
        return []
    import configparser  # here: the credential helper's warm get reads no AWS file on most workers

    parser = configparser.RawConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(content.decode("utf-8", "replace"))
    except configparser.Error:
        # What botocore makes of a file we cannot parse is unknown: the whole content tells it apart.
        return [(kind, "unparsed", _sha256(content))]
    facts: list[Fact] = []
    for section in sorted(parser.sections()):
        fields = parser[section]
        facts += [(kind, section, name, fields[name].strip()) for name in _PROFILE_FIELDS if fields.get(name)]
        facts += [
            (kind, section, name, "sha256:" + _sha256(fields[name].strip()))
            for name in _HASHED_PROFILE_FIELDS
            if fields.get(name)
        ]
    return facts


def _profile_token_files(facts: list[Fact]) -> list[str]:
    paths = {fact[3] for fact in facts if len(fact) == 4 and fact[2] == "web_identity_token_file"}
    return sorted(paths)[:_MAX_TOKEN_FILES]


def environment_facts(environ: Mapping[str, str], read: FileReader = read_small_file) -> list[Fact]:
    """
    Non-secret facts of the credentials boto3's default chain can pick up in this environment.

    They cover: the variables of :data:`ENV_FACTS`; the non-secret fields of every profile in the
    shared credentials and config files in use; the claims of the web-identity token
    (``AWS_WEB_IDENTITY_TOKEN_FILE`` or a profile's ``web_identity_token_file``) and of the
    container credentials token (``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` or
    ``AWS_CONTAINER_AUTHORIZATION_TOKEN``, as used by ECS and EKS Pod Identity).

    :param environ: the environment (``os.environ``).
    :param read: the file reader (:func:`read_small_file`).
    """
    facts: list[Fact] = [("env", name, environ[name]) for name in ENV_FACTS if environ.get(name)]
    credentials_path, config_path = shared_file_paths(environ)
    profiles = profile_file_facts("credentials", read(credentials_path))
    profiles += profile_file_facts("config", read(config_path))
    facts += profiles
    token_files = _profile_token_files(profiles)
    if environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        token_files.insert(0, _expand(environ["AWS_WEB_IDENTITY_TOKEN_FILE"], environ))
    facts += [token_file_facts(path, read) for path in dict.fromkeys(token_files)]
    container_token_file = environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
    if container_token_file:
        # botocore prefers the file to the variable, and re-reads it as it rotates.
        facts.append(("container", *token_file_facts(container_token_file, read)))
    elif environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN"):
        facts.append(("container", "token", *token_facts(environ["AWS_CONTAINER_AUTHORIZATION_TOKEN"])))
    return facts


def settings_facts(settings: Mapping[str, object], read: FileReader = read_small_file) -> list[Fact]:
    """
    Facts of a connection's extra (or direct AWS settings) that its non-secret fields do not show.

    A web-identity token file named there (``assume_role_with_web_identity_token_file``, which the
    secret-looking-name filter drops from the fields) enters with its token's claims.

    :param settings: the connection's extra or the AWS settings.
    :param read: the file reader.
    """
    path = settings.get("assume_role_with_web_identity_token_file")
    return [("settings", *token_file_facts(path, read))] if isinstance(path, str) and path else []


def default_chain_source(environ: Mapping[str, str], read: FileReader = read_small_file) -> str:
    """
    Where boto3's default credential chain finds credentials in this environment, in its order
    (environment, profile, web identity, container, instance role), as a phrase for messages.

    Never a secret: it names variables, files, profiles and role ARNs, never a key or a token. No
    network: an instance role is named as what is left, not asked for.

    :param environ: the environment (``os.environ``).
    :param read: the file reader.
    """
    if environ.get("AWS_ACCESS_KEY_ID") and environ.get("AWS_SECRET_ACCESS_KEY"):
        return "the environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    credentials_path, config_path = shared_file_paths(environ)
    named = environ.get("AWS_PROFILE") or environ.get("AWS_DEFAULT_PROFILE")
    if named:
        return f"the profile {named!r} of {credentials_path} or {config_path} (AWS_PROFILE)"
    if environ.get("AWS_WEB_IDENTITY_TOKEN_FILE") and environ.get("AWS_ROLE_ARN"):
        return f"web identity: the role {environ['AWS_ROLE_ARN']} with the token in AWS_WEB_IDENTITY_TOKEN_FILE"
    for kind, path in (("credentials", credentials_path), ("config", config_path)):
        if any(fact[1] == "default" for fact in profile_file_facts(kind, read(path))):
            return f"the [default] profile of {path}"
    for variable in ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        if environ.get(variable):
            return f"the container credentials endpoint in {variable} (an ECS task role or EKS Pod Identity)"
    if environ.get("AWS_EC2_METADATA_DISABLED", "").lower() == "true":
        return "nothing: no credentials in the environment or the shared AWS files, and instance metadata is disabled"
    return "this host's instance role (EC2 instance metadata), if it has one: nothing else is configured"
