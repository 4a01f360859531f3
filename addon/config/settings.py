"""The config file (YAML or JSON): its backends, their VGW_S3_MULTI_BACKEND_<N>_<FIELD>
overrides, and the proxy-wide settings beside them (VGW_S3_MULTI_<SETTING> overrides).

Everything is checked once, at load time, so a mistake stops the proxy with one line that names
the file or variable, the backend and the field. Error messages never contain a credential.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

from addon.config.files import ConfigError, beside, read_document
from addon.config.values import (
    Field,
    aws_endpoint,
    kind,
    normalise_endpoint,
    scrub,
    suggest,
    typed,
)

ENV_PREFIX = "VGW_S3_MULTI_BACKEND_"
SETTINGS_PREFIX = "VGW_S3_MULTI_"
DEFAULT_REGION = "us-east-1"

FIELDS: tuple[Field, ...] = (
    Field("name", "name", str, "NAME"),
    Field("access", "access", str, "ACCESS", credential=True),
    Field("secret", "secret", str, "SECRET", credential=True),
    Field("endpoint", "endpoint", str, "ENDPOINT"),
    Field("region", "region", str, "REGION", DEFAULT_REGION),
    Field("metaBucket", "meta_bucket", str, "META_BUCKET"),
    Field("disableChecksum", "disable_checksum", bool, "DISABLE_CHECKSUM", False),
    Field("sslSkipVerify", "ssl_skip_verify", bool, "SSL_SKIP_VERIFY", False),
    Field("usePathStyle", "use_path_style", bool, "USE_PATH_STYLE", False),
    Field("connectTimeout", "connect_timeout", float, "CONNECT_TIMEOUT", 5.0),
    Field("responseTimeout", "response_timeout", float, "RESPONSE_TIMEOUT", 30.0),
    Field("idleTimeout", "idle_timeout", float, "IDLE_TIMEOUT", 30.0),
    Field("migrate", "migrate", str, "MIGRATE", "off", choices=("off", "on-read")),
    Field("replicate", "replicate", str, "REPLICATE", "off", choices=("off", "sync", "async")),
)
# Proxy-wide, at the top level beside `backends`.
SETTINGS: tuple[Field, ...] = (
    Field("clientTimeout", "client_timeout", float, "CLIENT_TIMEOUT", 20.0),
    Field("clientIdleTimeout", "client_idle_timeout", float, "CLIENT_IDLE_TIMEOUT", 60.0),
    Field("maxClientConnections", "max_client_connections", int, "MAX_CLIENT_CONNECTIONS", 1024),
    Field("fallbackOn5xx", "fallback_on_5xx", bool, "FALLBACK_ON_5XX", False),
    Field("listing", "listing", str, "LISTING", "merged", choices=("merged", "primary")),
    Field("users", "users", str, "USERS", "", path=True),
    Field("usersPoll", "users_poll", float, "USERS_POLL", 10.0),
    Field("readFailover", "read_failover", bool, "READ_FAILOVER", True),
    Field("reconcileInterval", "reconcile_interval", float, "RECONCILE_INTERVAL", 600.0, off=True),
)
_BY_KEY = {f.key: f for f in FIELDS}
_BY_ENV = {f.env: f for f in FIELDS}
_TOP_LEVEL = {"backends": None, **{f.key: f for f in SETTINGS}}
_INDEX = re.compile(r"0|[1-9][0-9]*")
_REGION = re.compile(r"[a-z0-9-]+")


@dataclass(frozen=True)
class Backend:
    index: int
    name: str
    access: str
    secret: str = field(repr=False)
    endpoint: str
    region: str = DEFAULT_REGION
    meta_bucket: str = ""
    disable_checksum: bool = False
    ssl_skip_verify: bool = False
    use_path_style: bool = False
    connect_timeout: float = 5.0  # seconds to have a TCP connection
    response_timeout: float = 30.0  # from the request sent to the answer's headers
    idle_timeout: float = 30.0  # longest pause within an answer's body
    migrate: str = "off"  # "on-read": a full GET this fallback serves is copied to the primary
    replicate: str = "off"  # "sync" | "async": the primary's writes are copied here too


@dataclass(frozen=True)
class Config:
    backends: tuple[Backend, ...]  # the first is the primary
    client_timeout: float = 20.0  # a client's longest pause within its request
    client_idle_timeout: float = 60.0  # a client connection with no request in flight
    max_client_connections: int = 1024  # at once, per process; more are answered 503 and closed
    fallback_on_5xx: bool = False  # a read answered 5xx asks the next backend
    listing: str = "merged"  # ListObjects over every backend; "primary": the primary's alone
    users: str = ""  # the users file, or s3://<the primary's metaBucket>/<key> (addon.auth.users)
    users_poll: float = 10.0  # seconds between two looks at a users object
    read_failover: bool = True  # reads the primary cannot answer go to a replica in sync
    # Seconds between two listing comparisons of the primary and each replica (0: none).
    reconcile_interval: float = 600.0

    @property
    def replicas(self) -> tuple[Backend, ...]:
        """The backends the primary's writes are copied to, in config order."""
        return tuple(b for b in self.backends[1:] if b.replicate != "off")


def load_config(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, decode and validate the backends file; environ defaults to os.environ."""
    source = os.fspath(path)
    data = read_document(source)
    return parse_config(data, source, os.environ if environ is None else environ)


def config_or_say(path: str) -> Config | None:
    """For a command: the config, or None once its mistake is said (one line on stderr)."""
    try:
        return load_config(path)
    except ConfigError as e:
        print(f"s3-multi: {e}", file=sys.stderr)
        return None


def parse_config(data: object, source: str, environ: Mapping[str, str]) -> Config:
    """Validate an already-decoded document plus the environment overrides."""
    try:
        return _parse(data, source, environ)
    except ConfigError as e:
        raise ConfigError(scrub(str(e), _credentials(data, environ))) from None


# --- validation -------------------------------------------------------------------------------

# One backend's raw settings: field -> (value, where it came from, whether from the environment).
_Raw = dict[str, tuple[object, str, bool]]


def _parse(data: object, source: str, environ: Mapping[str, str]) -> Config:
    if data is None:
        raise ConfigError(
            f"{source}: the config is empty, expected a mapping with a 'backends' list"
        )
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping with a 'backends' list, got {kind(data)}"
        )
    for key in data:
        if key not in _TOP_LEVEL:
            raise ConfigError(f"{source}: unknown top-level key {key!r}{suggest(key, _TOP_LEVEL)}")
    backends = data.get("backends")
    if not isinstance(backends, list) or not backends:
        raise ConfigError(
            f"{source}: backends: must be a non-empty list (the first is the primary), "
            f"got {'an empty list' if backends == [] else kind(backends)}"
        )
    raws: list[_Raw] = []
    for index, entry in enumerate(backends):
        if not isinstance(entry, dict):
            raise _error(source, index, {}, "", f"must be a mapping of fields, got {kind(entry)}")
        raw: _Raw = {key: (value, source, False) for key, value in entry.items()}
        for key in entry:
            if key not in _BY_KEY:
                raise _error(
                    source, index, raw, "", f"unknown field {key!r}{suggest(key, _BY_KEY)}"
                )
        raws.append(raw)
    _apply_environment(raws, source, environ)
    backend_list = tuple(_backend(index, raw, source) for index, raw in enumerate(raws))
    replica = next((b for b in backend_list if b.replicate != "off"), None)
    if replica is not None and not backend_list[0].meta_bucket:
        problem = "needs the primary's metaBucket: what a replica misses is kept there"
        raise _error(source, replica.index, raws[replica.index], "replicate", problem)
    return Config(backend_list, **_settings(data, source, environ))  # type: ignore[arg-type]


def _settings(data: dict, source: str, environ: Mapping[str, str]) -> dict[str, object]:
    values = {}
    for f in SETTINGS:
        variable = SETTINGS_PREFIX + f.env
        if environ.get(variable):
            where, value, from_env = variable, environ[variable], True
        elif f.key in data:
            where, value, from_env = source, data[f.key], False
        else:
            values[f.attr] = f.default
            continue
        try:
            values[f.attr] = typed(f, value, from_env)
        except ValueError as e:
            raise ConfigError(f"{where}: {f.key}: {e}") from None
        if f.path and not from_env:
            values[f.attr] = beside(source, str(value))
    return values


def _apply_environment(raws: list[_Raw], source: str, environ: Mapping[str, str]) -> None:
    for var in sorted(environ):
        value = environ[var]
        # An empty variable counts as unset, as in the Go prototype (compose files pass VAR= along).
        if not var.startswith(ENV_PREFIX) or value == "":
            continue
        index_text, _, env_field = var.removeprefix(ENV_PREFIX).partition("_")
        if not _INDEX.fullmatch(index_text):
            raise ConfigError(
                f"{var}: expected {ENV_PREFIX}<N>_<FIELD> with N a backend index (0, 1, ...), "
                f"got {index_text!r}"
            )
        index = int(index_text)
        if index >= len(raws):
            count = (
                "1 backend (index 0)"
                if len(raws) == 1
                else f"{len(raws)} backends (0-{len(raws) - 1})"
            )
            raise ConfigError(
                f"{var}: backends[{index}]: no such backend, {source} has {count}; "
                "add the backend to the file first"
            )
        found = _BY_ENV.get(env_field)
        if found is None:
            known = ", ".join(_BY_ENV)
            suggestion = suggest(env_field.upper(), _BY_ENV)
            problem = f"unknown field {env_field!r} (known: {known}){suggestion}"
            raise _error(var, index, raws[index], "", problem)
        raws[index][found.key] = (value, var, True)


def _backend(index: int, raw: _Raw, file_source: str) -> Backend:
    def fail(key: str, problem: str) -> ConfigError:
        where = raw[key][1] if key in raw else file_source
        return _error(where, index, raw, key, problem)

    def read(f: Field) -> object:
        if f.key not in raw or (raw[f.key][0] is None and f.kind is str):
            return f.default  # null in the file means "not set" for string fields
        value, _, from_env = raw[f.key]
        try:
            return typed(f, value, from_env)
        except ValueError as e:
            raise fail(f.key, str(e)) from None

    values = {f.attr: read(f) for f in FIELDS}
    for key in ("access", "secret"):
        value = values[key]
        if not value:
            variable = f"{ENV_PREFIX}{index}_{_BY_KEY[key].env}"
            raise fail(key, f"is required, set it in the file or with {variable}")
        if value != str(value).strip():
            raise fail(key, "has leading or trailing whitespace")

    region = str(values["region"] or DEFAULT_REGION)
    if not _REGION.fullmatch(region):
        raise fail("region", f"must be lowercase letters, digits and '-', got {region!r}")
    endpoint = str(values["endpoint"])
    if endpoint:
        try:
            endpoint = normalise_endpoint(endpoint)
        except ValueError as e:
            # A URL with user:password@ is not echoed: the password may be a real secret.
            shown = "" if "@" in endpoint else f", got {endpoint!r}"
            raise fail("endpoint", f"{e}{shown}") from None
    else:
        endpoint = aws_endpoint(region)
    if index == 0 and values["migrate"] != "off":
        raise fail("migrate", "the primary is where copies go; set it on a fallback")
    if index == 0 and values["replicate"] != "off":
        raise fail("replicate", "the primary is what replicas copy; set it on another backend")
    values.update(region=region, endpoint=endpoint, name=values["name"] or f"backend-{index}")
    return Backend(index=index, **values)  # type: ignore[arg-type]


# --- messages ---------------------------------------------------------------------------------


def _error(source: str, index: int, raw: _Raw, key: str, problem: str) -> ConfigError:
    """`source: backends[i] ("name"): field: problem`, naming the backend as the user knows it."""
    name = raw.get("name", (None, "", False))[0]
    label = f"backends[{index}]"
    if isinstance(name, str) and name:
        label += f" ({json.dumps(name, ensure_ascii=False)})"
    return ConfigError(": ".join(part for part in (source, label, key, problem) if part))


def _credentials(data: object, environ: Mapping[str, str]) -> set[str]:
    """Every access/secret value in sight, for scrubbing from error messages."""
    values: list[object] = [
        value
        for var, value in environ.items()
        if var.startswith(ENV_PREFIX) and var.endswith(("_ACCESS", "_SECRET"))
    ]
    backends = data.get("backends") if isinstance(data, dict) else None
    if isinstance(backends, list):
        keys = [f.key for f in FIELDS if f.credential]
        values += [b.get(k) for b in backends if isinstance(b, dict) for k in keys]
    # Very short values would mangle ordinary words; real keys are much longer.
    return {v for v in values if isinstance(v, str) and len(v) >= 4}
