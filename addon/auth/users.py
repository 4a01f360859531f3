"""Gateway users: the users file (YAML or JSON), checked strictly, and the key table it makes.

    users:
      - access: reports-reader          # VersityGW's account fields: access, secret, role
        secret: ...
        role: readonly                  # admin | user | readonly
        buckets: [reports-*, public]    # optional globs; without it, every bucket

The root keys are always in the table, as admin, whatever the file says. A mistake is one line
naming the file, the user (index and access key) and the field; a secret is never in it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from addon.auth.checks import Key, KeyTable
from addon.auth.rights import Role, User
from addon.config.files import ConfigError, read_document
from addon.config.values import Field, kind, scrub, suggest, typed
from addon.s3.errors import S3Error

# The required fields; `buckets` (a list of globs) is optional.
FIELDS: tuple[Field, ...] = (
    Field("access", "access", str, ""),
    Field("secret", "secret", str, "", credential=True),
    Field("role", "role", str, "", choices=tuple(r.value for r in Role)),
)
_KNOWN = (*(f.key for f in FIELDS), "buckets")
# SigV4 puts the access key in `Credential=AK/date/region/s3/aws4_request`.
_ACCESS = re.compile(r"[!-~]+")
_GLOB = re.compile(r"[A-Za-z0-9._*?\[\]!-]+")
PENDING = "The gateway's users are not loaded yet; try again."


class Users(KeyTable[User]):
    """The key table: the root keys (admin) and the users file's, by access key.

    `pending`: the users are still to be read (an object in the metaBucket, fetched once the
    proxy runs): any key but the root's is told to try again, not that it does not exist."""

    def __init__(
        self, root: Key, users: Sequence[User] = (), source: str = "", pending: bool = False
    ) -> None:
        self.root = User(root.access, root.secret, Role.ADMIN)
        super().__init__([self.root, *users])
        self.users = tuple(users)
        self.source = source
        self.pending = pending

    def find(self, access: str) -> User:
        if self.pending and access != self.root.access:
            raise S3Error("ServiceUnavailable", PENDING)
        return super().find(access)

    def __repr__(self) -> str:
        return f"Users({len(self.users)} from {self.source or 'nowhere'}, and the root keys)"


def load_users(path: str, root: Key) -> Users:
    """Read and check the users file at `path`; ConfigError says what is wrong."""
    return parse_users(read_document(path), path, root)


def parse_users(data: object, source: str, root: Key) -> Users:
    """Check an already-decoded users document."""
    try:
        return Users(root, _users(data, source, root), source)
    except ConfigError as e:
        raise ConfigError(scrub(str(e), _secrets(data, root))) from None


def _users(data: object, source: str, root: Key) -> list[User]:
    if data is None:
        raise ConfigError(f"{source}: the users file is empty, expected a mapping with 'users'")
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: the top level must be a mapping with a 'users' list, got {kind(data)}"
        )
    for key in data:
        if key != "users":
            raise ConfigError(f"{source}: unknown top-level key {key!r}{suggest(key, ['users'])}")
    entries = data.get("users")
    if not isinstance(entries, list):
        raise ConfigError(f"{source}: users: must be a list of users, got {kind(entries)}")
    users: dict[str, tuple[int, User]] = {}  # by access key, with its index
    for index, entry in enumerate(entries):
        where = f"{source}: users[{index}]"
        user = _user(entry, where)
        if user.access in users:
            earlier = users[user.access][0]
            raise _error(where, entry, "access", f"the same access key as users[{earlier}]")
        if user.access == root.access:
            raise _error(where, entry, "access", "the root keys' (they are always admin)")
        users[user.access] = (index, user)
    return [user for _, user in users.values()]


def _user(entry: object, where: str) -> User:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: must be a mapping of fields, got {kind(entry)}")

    def fail(field: str, problem: str) -> ConfigError:
        return _error(where, entry, field, problem)

    for key in entry:
        if key not in _KNOWN:
            raise fail("", f"unknown field {key!r}{suggest(key, _KNOWN)}")
    values: dict[str, str] = {}
    for f in FIELDS:
        if f.key not in entry:
            raise fail(f.key, "is required")
        try:
            values[f.key] = str(typed(f, entry[f.key], False))
        except ValueError as e:
            raise fail(f.key, str(e)) from None
    access, secret = values["access"], values["secret"]
    if not _ACCESS.fullmatch(access) or "/" in access:
        raise fail("access", "must be printable ASCII, without spaces or '/'")
    if not secret or secret != secret.strip():
        raise fail("secret", "must not be empty or start or end with a space")
    buckets = _buckets(entry["buckets"], fail) if "buckets" in entry else ()
    return User(access, secret, Role(values["role"]), buckets)


def _error(where: str, entry: dict, field: str, problem: str) -> ConfigError:
    """`where ("access key"): field: problem`, naming the user as clients know it (built only
    for a mistake: a file of thousands of users is read in a fraction of a second)."""
    access = entry.get("access")
    if isinstance(access, str) and access:
        where += f" ({json.dumps(access)})"
    return ConfigError(": ".join(part for part in (where, field, problem) if part))


def _buckets(value: object, fail: Callable[[str, str], ConfigError]) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise fail("buckets", f"must be a list of bucket names or globs, got {kind(value)}")
    if not value:
        raise fail("buckets", "an empty list allows no bucket; leave it out for every bucket")
    for i, glob in enumerate(value):
        if not isinstance(glob, str) or not _GLOB.fullmatch(glob):
            shown = repr(glob) if isinstance(glob, str) else kind(glob)
            raise fail(
                f"buckets[{i}]", f"must be a bucket name or a glob (*, ?, [...]), got {shown}"
            )
    return tuple(value)


def _secrets(data: object, root: Key) -> list[object]:
    """Every secret in sight, for scrubbing from messages."""
    entries = data.get("users") if isinstance(data, dict) else None
    found: list[object] = [root.secret]
    if isinstance(entries, list):
        found += [e.get("secret") for e in entries if isinstance(e, dict)]
    return found
