"""One config value at a time: a field's type and default, how a value is read (from the file
or from a variable's text), how an endpoint is normalised, and the words a message uses to
describe a value without echoing a credential."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Field:
    """One field: its name in the file, its type, default and variable suffix."""

    key: str  # as written in the file
    attr: str  # the Backend (or Config) attribute
    kind: type  # str, bool, float (seconds, more than 0) or int (a count, 1 or more)
    env: str  # VGW_S3_MULTI_BACKEND_<N>_<env> (settings: VGW_S3_MULTI_<env>)
    default: object = ""
    credential: bool = False  # never echoed in a message
    choices: tuple[str, ...] = ()  # a string field that takes only these
    path: bool = False  # a file: written in the config file, relative to that file's folder
    off: bool = False  # seconds that may be 0: the setting is off


_ENV_BOOLS = {
    "true": True, "1": True, "yes": True, "on": True,
    "false": False, "0": False, "no": False, "off": False,
}  # fmt: skip
_HOST = re.compile(r"[a-z0-9._-]+")


def typed(f: Field, value: object, from_env: bool) -> object:
    """`value` as field `f` takes it; ValueError says what is wrong (never quoting a
    credential)."""
    if f.kind is bool and from_env:
        parsed = _ENV_BOOLS.get(str(value).lower())
        if parsed is None:
            raise ValueError(f"must be true/false, 1/0, yes/no or on/off, got {value!r}")
        return parsed
    if f.kind is bool and not isinstance(value, bool):
        raise ValueError(f"must be true or false, unquoted, got {show(value)}")
    if f.kind is float:
        return seconds(value, from_env, f.off)
    if f.kind is int:
        return count(value, from_env)
    if f.kind is str and not isinstance(value, str):
        got = kind(value) if f.credential else show(value)
        raise ValueError(f"must be a string (quote it in the file), got {got}")
    if f.choices and value not in f.choices:
        raise ValueError(f"must be one of {', '.join(f.choices)}, got {value!r}")
    return value


def seconds(value: object, from_env: bool, off: bool = False) -> float:
    """A number of seconds, more than 0 (or 0 with `off`) and at most a day."""
    number: object = value
    if from_env:
        try:
            number = float(str(value))
        except ValueError:
            raise ValueError(f"must be a number of seconds, got {value!r}") from None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise ValueError(f"must be a number of seconds, unquoted, got {show(value)}")
    if off and number == 0:
        return 0.0
    if not 0 < number <= 86400:
        least = "0 (off)" if off else "more than 0"
        raise ValueError(f"must be {least} and at most 86400 seconds, got {number}")
    return float(number)


def count(value: object, from_env: bool) -> int:
    number: object = value
    if from_env:
        try:
            number = int(str(value))
        except ValueError:
            raise ValueError(f"must be a whole number, got {value!r}") from None
    if isinstance(number, bool) or not isinstance(number, int):
        raise ValueError(f"must be a whole number, unquoted, got {show(value)}")
    if not 1 <= number <= 1_000_000:
        raise ValueError(f"must be from 1 to 1000000, got {number}")
    return number


def aws_endpoint(region: str) -> str:
    if region == "us-east-1":
        return "https://s3.amazonaws.com"
    return f"https://s3.{region}.amazonaws.com"


def normalise_endpoint(url: str) -> str:
    """Return "scheme://host[:port][/path]", lowercased and without a default port or trailing /."""
    if any(c.isspace() for c in url):
        raise ValueError("must not contain spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("must be a URL with a valid host and port (1-65535)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not url.lower().startswith(f"{scheme}://"):
        raise ValueError("must start with http:// or https://")
    if "@" in parts.netloc:
        raise ValueError("must not contain credentials (user:password@), use access and secret")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError("must not have a query (?) or fragment (#)")
    host = parts.hostname or ""
    if not host:
        raise ValueError("has no host")
    if ":" not in host and not _HOST.fullmatch(host):  # IPv6 was already checked by urlsplit
        raise ValueError("has an invalid host")
    if port == 0:
        raise ValueError("has an invalid port (must be 1-65535)")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != {"http": 80, "https": 443}[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def suggest(key: object, known: Iterable[str]) -> str:
    """ ", did you mean 'usePathStyle'?" when key is close to a known name, else ""."""
    candidates = list(known)
    text = str(key)
    squashed = {c.lower().replace("_", ""): c for c in candidates}
    match = squashed.get(text.lower().replace("_", "").replace("-", ""))
    if match is None:
        close = difflib.get_close_matches(text, candidates, n=1, cutoff=0.6)
        match = close[0] if close else None
    return f", did you mean {match!r}?" if match else ""


def scrub(message: str, credentials: Iterable[object]) -> str:
    """`message` with every credential in sight replaced by ***: one pasted into the wrong field
    would otherwise be echoed as a bad value. Values under 4 characters are left alone: they
    would mangle ordinary words, and real keys are much longer."""
    for credential in {c for c in credentials if isinstance(c, str) and len(c) >= 4}:
        message = message.replace(credential, "***")
    return message


def kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def show(value: object) -> str:
    """_kind plus the value itself, for fields whose values are not secret."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    return kind(value)
