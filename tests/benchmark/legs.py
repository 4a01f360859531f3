"""What is measured, as data: the ways to the backends, the backend pairs, and the legs.

A `Way` is one way of reaching a pair of backends (the primary directly, plain mitmdump, s3-multi,
the rclone union); a `Setup` is a pair of backends with the ways run in front of it; a `Leg` is
one kind of request (method, object, size). Every leg runs on every setup, through every way
that can serve it (`requires` names what a way must be able to do).

To add a way: a `Way` whose `start` runs it (a function beside `services.s3_multi`; for the
s3-multi command with N worker processes, `services.s3_multi_workers(N)`, over HTTPS with
`tls=True`), listed in the
setups' `ways` (and in their `ratios` to be compared); a way `solely` for the legs that
require something runs those alone (copy on read: its copies would turn the other ways'
fallback hits into primary hits). To add a leg: a `Leg` in `SMALL_LEGS` (it is replayed by wrk
like the others) with what it requires (a capability, such as LISTING, that only some ways have,
and that a setup's backends may lack); the objects it needs are placed by `runner.place_objects`
(before the ways start: rclone caches listings), its answer is checked by `runner.check_answer`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from addon.ops.workers import cores
from tests.benchmark import backends, services
from tests.benchmark.backends import Pair
from tests.benchmark.services import Backend, Endpoint

MIB = 1024 * 1024
SMALL = 1024
FALLBACK = "fallback"  # serves an object that only a later backend holds
LISTING = "merged listing"  # lists the keys of both backends as one
COPY_ON_READ = "copy on read"  # a fallback's whole object read is copied to the primary
WRK, ASYNCIO = "wrk", "asyncio"  # small legs' load generators (load.py: wrk cannot replay HEAD)
# A copied leg's transfers per run, each copied (the copy lands and is removed before the next):
# one is too noisy to hold to a target.
COPIED_TRANSFERS = 3
PRIMARY, SECONDARY = 0, 1  # where an object is placed before the legs, by backend index


@dataclass(frozen=True)
class Way:
    name: str
    start: Callable[[Sequence[Backend], Path, str], Endpoint]
    can: frozenset[str] = frozenset()
    ours: bool = False  # the project's proxy: the subject of ratios and targets
    solely: str | None = None  # runs only the legs that require this (compared on their own)


DIRECT = Way("direct", services.direct)
PLAIN = Way("plain mitmdump", services.plain_mitmdump)
S3_MULTI = Way("mitmdump -s", services.s3_multi, frozenset({FALLBACK, LISTING}), ours=True)
ONE_WORKER = Way(
    services.way_name(1), services.s3_multi_workers(1), frozenset({FALLBACK, LISTING}), ours=True
)
WORKERS = max(2, cores())  # what `s3-multi` runs by default (here: as many as cores)
S3_MULTI_WORKERS = Way(
    services.way_name(WORKERS),
    services.s3_multi_workers(WORKERS),
    frozenset({FALLBACK, LISTING}),
    ours=True,
)
S3_MULTI_TLS = Way(
    services.way_name(WORKERS, tls=True),
    services.s3_multi_workers(WORKERS, tls=True),
    frozenset({FALLBACK, LISTING}),
    ours=True,
)
RCLONE = Way("rclone union", services.rclone_union, frozenset({FALLBACK, LISTING}))
RCLONE_TLS = Way("rclone union, HTTPS", services.rclone_union_tls, frozenset({FALLBACK, LISTING}))
COPYING = Way(
    "mitmdump -s, copy on read",
    services.s3_multi_copying,
    frozenset({FALLBACK, COPY_ON_READ}),
    solely=COPY_ON_READ,
)


@dataclass(frozen=True)
class Setup:
    name: str
    start: Callable[[Path], Pair]
    ways: tuple[Way, ...]
    ratios: tuple[tuple[Way, Way], ...]  # (ours, theirs): the tables' ratio columns
    targets: bool = False  # against plain mitmdump, checked here: only the proxy's cost shows
    peer: Way | None = None  # the peer that s3-multi's workers must beat here
    # Its data in tmpfs when there is room (nginx: a PUT's file is gone as soon as it is
    # removed); else on disk (SeaweedFS gives space back only when its volumes are vacuumed).
    in_memory: bool = False
    cannot: frozenset[str] = frozenset()  # what its backends cannot serve
    copy_target: float = 1.2  # a copied read's transfer time over the same without copy, at most

    def runs(self, leg: Leg) -> bool:
        return not leg.requires & self.cannot


SETUPS = (
    Setup(
        "nginx",
        backends.start_nginx,
        (DIRECT, PLAIN, S3_MULTI, ONE_WORKER, S3_MULTI_WORKERS, COPYING),
        (
            (S3_MULTI, PLAIN),
            (ONE_WORKER, PLAIN),
            (S3_MULTI_WORKERS, ONE_WORKER),
            (ONE_WORKER, DIRECT),
        ),
        targets=True,
        in_memory=True,
        # The fake answers GET, HEAD and PUT of objects only: no listings. The copying way's
        # primary is the fake that takes copies (`fake_primary`), before the nginx secondary.
        cannot=frozenset({LISTING}),
        copy_target=1.15,
    ),
    Setup(
        "SeaweedFS",
        backends.start_seaweedfs,
        (DIRECT, PLAIN, S3_MULTI, S3_MULTI_WORKERS, RCLONE, S3_MULTI_TLS, RCLONE_TLS, COPYING),
        (
            (S3_MULTI, PLAIN),
            (S3_MULTI_WORKERS, RCLONE),
            (S3_MULTI_TLS, RCLONE_TLS),
            (S3_MULTI_TLS, S3_MULTI_WORKERS),
            (S3_MULTI_WORKERS, S3_MULTI),
        ),
        peer=RCLONE,
    ),
)


@dataclass(frozen=True)
class Leg:
    name: str
    label: str
    method: str
    key: str  # a PUT writes `<key>-<way>`, one key per way
    on: int | None  # the backend that holds the object beforehand; None for a PUT
    size: int
    requires: frozenset[str] = frozenset()
    stand_in: str | None = None  # a way that cannot run this leg is compared on that leg
    generator: str = WRK  # for small legs
    query: str = ""
    listed: int = 0  # a listing of this many keys under `key/`, placed on both backends in turn

    @property
    def large(self) -> bool:
        return self.size >= MIB

    @property
    def unit(self) -> str:
        return "MB/s" if self.large else "req/s"

    def runs_on(self, way: Way) -> bool:
        return self.requires <= way.can and (way.solely is None or way.solely in self.requires)

    @property
    def copies(self) -> bool:
        """Each transfer is copied to the primary: one at a time, the copy removed after."""
        return COPY_ON_READ in self.requires

    def key_for(self, way: Way) -> str:
        return self.key if self.on is not None else f"{self.key}-{services.slug(way.name)}"


SMALL_LEGS = (
    Leg("get", "GET 1 KiB, primary hit", "GET", "small-hit", PRIMARY, SMALL),
    Leg(
        "get-fallback",
        "GET 1 KiB, fallback hit",
        "GET",
        "small-fallback",
        SECONDARY,
        SMALL,
        frozenset({FALLBACK}),
        stand_in="get",
    ),
    Leg(
        "head-fallback",
        "HEAD 1 KiB, fallback hit",
        "HEAD",
        "small-fallback",
        SECONDARY,
        SMALL,
        frozenset({FALLBACK}),
        generator=ASYNCIO,
    ),
    Leg("put", "PUT 1 KiB", "PUT", "small-put", None, SMALL),
    Leg(
        "list",
        "LIST 100 keys of both backends",
        "GET",
        "listed",
        PRIMARY,
        0,
        frozenset({LISTING}),
        query="list-type=2&prefix=listed%2F",
        listed=100,
    ),
)


def large_legs(size_mib: int) -> tuple[Leg, ...]:
    size = size_mib * MIB
    return (
        Leg(f"get-{size_mib}", f"GET {size_mib} MiB", "GET", f"large-{size_mib}", PRIMARY, size),
        Leg(
            f"get-{size_mib}-fallback",
            f"GET {size_mib} MiB, fallback hit",
            "GET",
            f"large-{size_mib}-fallback",
            SECONDARY,
            size,
            frozenset({FALLBACK}),
            stand_in=f"get-{size_mib}",
        ),
        Leg(
            f"get-{size_mib}-copy",
            f"GET {size_mib} MiB, fallback hit, copied on read",
            "GET",
            f"large-{size_mib}-copy",
            SECONDARY,
            size,
            frozenset({FALLBACK, COPY_ON_READ}),
            stand_in=f"get-{size_mib}-fallback",
        ),
        Leg(f"put-{size_mib}", f"PUT {size_mib} MiB", "PUT", f"put-{size_mib}", None, size),
    )
