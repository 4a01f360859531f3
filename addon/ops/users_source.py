"""Where the users table comes from and how it is read again: a file, or an object in the
primary's metaBucket that every instance polls by ETag.

`UsersSource.load` reads the table now (a file) or starts polling (an object); `reload` reads it
again: the one way in for every reload (the `s3multi_users` option set again, SIGHUP). A bad new
file is refused with one line and the table in use stays: rights change only to a valid table.
Secrets never reach a message (`addon.auth.users` scrubs them).

An object `s3://<metaBucket>/<key>` must be in the primary's metaBucket, which no client can
read, write or copy from through the proxy. Every `users_poll` seconds it is asked for with
`If-None-Match`: a 304 costs a few hundred bytes; a new ETag is read, checked and installed (a
bad one is reported once, and its ETag remembered so that it is not read again). Until the first
look succeeds, any key but the root's is told to try again (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from addon.auth.checks import Key
from addon.auth.users import Users, load_users, parse_users
from addon.config.files import ConfigError, decode_document
from addon.config.settings import Backend
from addon.s3 import sigv4
from addon.s3.errors import error_code
from addon.upstream.backend_client import BackendClient, BackendError

log = logging.getLogger(__name__)
OBJECT_SCHEME = "s3://"
MAX_USERS_OBJECT = 1024 * 1024  # ten thousand users are under 1 MB


def polled(location: str) -> bool:
    """Whether the users are an object (polled), not a file."""
    return location.startswith(OBJECT_SCHEME)


class UsersSource:
    """One place the users are read from; `install` takes each valid table read there."""

    def __init__(
        self,
        location: str,
        root: Key,
        install: Callable[[Users], None],
        client: BackendClient,
        primary: Backend,
        every: float = 10.0,
    ) -> None:
        self.location = location  # "" (the root keys alone), a file path, or s3://bucket/key
        self.root = root
        self.install = install
        self.client = client
        self.primary = primary
        self.every = every
        self.bucket, _, self.key = location.removeprefix(OBJECT_SCHEME).partition("/")
        self.etag: str | None = None  # of the object version last read, good or bad
        self._poll: asyncio.Task | None = None
        self._wake = asyncio.Event()  # set: look now, without waiting for the next poll
        self._trouble = ""  # the last problem reported, so that a lasting one is told once

    @property
    def polled(self) -> bool:
        return polled(self.location)

    def load(self) -> None:
        """Read a file now, or start polling an object; ConfigError before anything changed."""
        if not self.polled:
            self.reload()
            return
        if not self.key or self.bucket != self.primary.meta_bucket:
            meta = self.primary.meta_bucket or "<metaBucket>"
            raise ConfigError(
                f"users: {self.location}: must be an object in the primary's metaBucket, "
                f"s3://{meta}/<key>, where no client can read it"
            )
        self._poll = asyncio.get_running_loop().create_task(self._polling())

    def reload(self) -> None:
        """Read the users again: a file now (ConfigError when it is bad, the table in use
        stays), an object at once, in the background (its problems are logged)."""
        if self.polled:
            self._wake.set()
            return
        users = load_users(self.location, self.root) if self.location else Users(self.root)
        self.install(users)
        if self.location:
            log.info("s3-multi: %d users from %s", len(users.users), self.location)

    def close(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            self._poll = None

    async def _polling(self) -> None:
        while True:
            self._wake.clear()
            await self.look()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.every)

    async def look(self) -> None:
        """Ask for the object unless it is the version last read; install it if it is new and
        valid. Never raises: a problem is logged and the table in use stays."""
        headers = [("if-none-match", self.etag)] if self.etag else []
        try:
            async with self.client.request(
                self.primary, "GET", self.bucket, sigv4.key_path(self.key), headers=headers
            ) as reply:
                body = await reply.read(MAX_USERS_OBJECT)
        except BackendError as e:
            self._report(f"cannot be read from {self.primary.name}: {e}")
            return
        etag = reply.header("etag")
        if reply.status == 304 or (reply.status == 200 and etag and etag == self.etag):
            return  # the version last read (a backend may ignore If-None-Match)
        if reply.status != 200:
            code = error_code(body) or "no error code"
            self._report(f"{self.primary.name} answered {reply.status} ({code})")
            return
        self.etag = etag
        try:
            # In a thread: thousands of users take a second, which the event loop cannot wait.
            users = await asyncio.to_thread(self._parse, body)
        except UnicodeDecodeError:
            self._report("is not UTF-8 text")
            return
        except ConfigError as e:
            self._report(str(e).removeprefix(f"{self.location}: "))
            return
        self._trouble = ""
        self.install(users)
        log.info("s3-multi: %d users from %s (ETag %s)", len(users.users), self.location, self.etag)

    def _parse(self, body: bytes) -> Users:
        document = decode_document(body.decode("utf-8-sig"), self.location)
        return parse_users(document, self.location, self.root)

    def _report(self, problem: str) -> None:
        if problem != self._trouble:
            self._trouble = problem
            log.error("s3-multi: %s: %s; the users in use stay", self.location, problem)
