"""Everything the options and the config file decide, built whole (`assemble`) for the addon to
swap in whole: a mistake raises OptionsError and leaves the running setup as it was. Run at
start, on every option update, and on SIGHUP (the files read again). A setup's background work
(the prober of backends marked down, the certificates' reading and renewal) runs from `start`
to `close`."""

from __future__ import annotations

import asyncio
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
from addon.ops import metrics
from addon.ops.status_paths import Readiness
from addon.ops.users_source import UsersSource, polled
from addon.replication.certificates import Certificates, UnknownBacklog
from addon.replication.service import Replication
from addon.upstream import backends
from addon.upstream.backend_client import BackendClient
from addon.upstream.deadlines import Injector
from addon.upstream.health import Health, Prober

log = logging.getLogger("s3multi")
RELOAD_WAIT = 10.0  # seconds a replaced setup's replication jobs get to finish
_STOPPING: set[asyncio.Task] = set()  # replaced replications handing over, held until done


@dataclass
class Setup:
    """What one config decides, in use together."""

    router: Router
    client: BackendClient  # the proxy's own requests
    replication: Replication | None  # None: no replicas
    readiness: Readiness
    connect_timeouts: ConnectTimeouts
    head_limits: HeadLimits
    debug: bool
    prober: Prober
    certificates: Certificates
    _probing: asyncio.Task | None = None

    def start(self) -> None:
        """The background work, on the running event loop; the backends' state in metrics."""
        if self._probing is None:
            health = self.prober.health
            metrics.watch(health, [b.name for b in self.prober.backends])
            self._probing = asyncio.get_running_loop().create_task(self.prober.run())
            self.certificates.start()
            if self.replication is not None:
                self.replication.start()

    def close(self) -> None:
        if self._probing is not None:
            self._probing.cancel()
        self.prober.close()
        self.certificates.close()


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
    health = Health(b.name for b in config.backends)
    client.health = health  # what the proxy's own requests find, too
    replication = None
    if config.replicas:
        replication = Replication(config, client, metrics.ReplicationMetrics())
    certificates = Certificates(
        config.backends[0], config.replicas, client, health, replication or UnknownBacklog()
    )
    if replication is not None:  # a miss recorded for a replica revokes its certificate
        replication.outbox.listeners.append(certificates.missed)
    router = Router(
        config,
        auth,
        inject,
        client,
        options.domains(),
        _tombstones(config, client),
        users=users,
        copies=copies,
        health=health,
        certificates=certificates,
        replication=replication,
    )
    limits = HeadLimits(seconds=config.client_timeout, refuse=own_answers.refuse_head)
    prober = Prober(health, config.backends, client)
    setup = Setup(
        router,
        client,
        replication,
        Readiness(config, prober, certificates, replication),
        ConnectTimeouts(partial(backends.connect_timeout, config.backends)),
        limits,
        options.debug(),
        prober,
        certificates,
    )
    names = ", ".join(f"{b.name} ({b.endpoint})" for b in config.backends)
    log.info("s3-multi: %d backends, primary first: %s", len(config.backends), names)
    return setup


def swapped(old: Setup | None, new: Setup) -> None:
    """`new` replaces `old` (a reload) on the running loop: the old replication hands what it
    holds to the outbox in the background (its jobs waited for RELOAD_WAIT seconds at most)."""
    if old is not None and old.replication is not None and old.replication is not new.replication:
        stopping = asyncio.ensure_future(old.replication.stop(RELOAD_WAIT))
        _STOPPING.add(stopping)
        stopping.add_done_callback(_STOPPING.discard)


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
