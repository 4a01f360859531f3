"""Everything the options and the config file decide, built whole (`assemble`) for the addon to
swap in whole: a mistake raises OptionsError and leaves the running setup as it was. Run at
start, on every option update, and on SIGHUP (the files read again)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from mitmproxy import ctx, exceptions

from addon.auth.checks import Key
from addon.auth.client_auth import ClientAuth
from addon.auth.users import Users
from addon.config.files import ConfigError
from addon.config.settings import Config, load_config
from addon.gateway import options, own_answers
from addon.gateway.router import Router
from addon.migration.copy_on_read import CopyTasks
from addon.mitm.client_heads import HeadLimits
from addon.mitm.connect_timeouts import ConnectTimeouts
from addon.namespace.tombstones import Tombstones
from addon.ops.status_paths import Readiness
from addon.ops.users_source import UsersSource, polled
from addon.upstream import backends
from addon.upstream.backend_client import BackendClient
from addon.upstream.deadlines import Injector

log = logging.getLogger("s3multi")


@dataclass
class Setup:
    """What one config decides, in use together."""

    router: Router
    client: BackendClient  # the proxy's own requests
    readiness: Readiness
    connect_timeouts: ConnectTimeouts
    head_limits: HeadLimits
    debug: bool


def assemble(
    settings: dict[str, str],
    running: Setup | None,
    copies: CopyTasks,
    inject: Injector,
) -> Setup:
    """A new setup from `settings` (the options of `options.FROM_ENVIRONMENT`, all set) and the
    files they name. What `running` holds that the new one can keep, it keeps: the backend
    client (its connections), unless its CA changed, and the users of a polled users object."""
    try:
        config = load_config(settings["s3multi_config"])
    except ConfigError as e:
        raise exceptions.OptionsError(str(e)) from None
    root = Key(settings["s3multi_access"], settings["s3multi_secret"])
    users = _users(root, ctx.options.s3multi_users or config.users, running)
    auth = ClientAuth(users, ctx.options.s3multi_region)
    ca_file = ctx.options.ssl_verify_upstream_trusted_ca or None
    client = running.client if running is not None else None
    if client is None or client.ca_file != ca_file:
        client = BackendClient(ca_file=ca_file)
    router = Router(
        config,
        auth,
        inject,
        client,
        options.domains(),
        _tombstones(config, client),
        users=users,
        copies=copies,
    )
    limits = HeadLimits(seconds=config.client_timeout, refuse=own_answers.refuse_head)
    setup = Setup(
        router,
        client,
        Readiness(config.backends, client),
        ConnectTimeouts(partial(backends.connect_timeout, config.backends)),
        limits,
        options.debug(),
    )
    names = ", ".join(f"{b.name} ({b.endpoint})" for b in config.backends)
    log.info("s3-multi: %d backends, primary first: %s", len(config.backends), names)
    return setup


def _users(root: Key, location: str, running: Setup | None) -> Users:
    in_use = running.router.users if running is not None else None
    if polled(location) and in_use and in_use.source == location and not in_use.pending:
        # Until the new poll's first look: the table in use, not "try again" to every user.
        return Users(root, in_use.users, source=location)
    return Users(root, source=location, pending=polled(location))


def _tombstones(config: Config, client: BackendClient) -> Tombstones | None:
    primary, *fallbacks = config.backends
    if primary.meta_bucket:
        return Tombstones(primary, tuple(fallbacks), client)
    if fallbacks:
        log.warning(
            "s3-multi: no metaBucket on the primary (%s): a delete of a key that a fallback "
            "still has will not stick (the fallback's copy is served again)",
            primary.name,
        )
    return None


def open_users(router: Router, client: BackendClient) -> UsersSource:
    """The users from where `s3multi_users` (else the config's `users`) says, read now; a bad
    file is refused (OptionsError)."""
    location = ctx.options.s3multi_users or router.config.users
    source = UsersSource(
        location,
        router.users.root,
        router.use_users,
        client,
        router.backends[0],
        router.config.users_poll,
    )
    try:
        source.load()
    except ConfigError as e:
        raise exceptions.OptionsError(str(e)) from None
    return source
