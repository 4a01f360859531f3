"""A client request on its way in: authenticate, classify, authorise, choose where it goes.

`Router.start` reads top-down: the request is verified against the key table (the root keys and
the gateway users', `addon.auth.users`), classified with the operation table, checked against
the user's rights (`addon.auth.rights`), and turned into what carries it out: a `BucketsMerge` or
`ListingMerge` (answered by the proxy from every backend), or an `Exchange` (forwarded in-flow to
the primary, and to the next backends on "not found" for reads) with what else it sets off
chosen by `after_steps.RULES`. Whatever must be refused is raised as an S3Error before anything
is forwarded.
"""

from __future__ import annotations

from dataclasses import dataclass

from mitmproxy import http

from addon.auth import rights
from addon.auth.checks import Verified
from addon.auth.client_auth import ClientAuth
from addon.auth.rights import User
from addon.auth.users import Users
from addon.config.settings import Config
from addon.gateway import after_steps
from addon.gateway.after_steps import COPIES, Asked, Wiring
from addon.migration.copier import Migrator
from addon.migration.copy_on_read import CopyTasks, ReadCopier
from addon.namespace import hiding
from addon.namespace.bucket_listing import BucketsMerge
from addon.namespace.fallback_copy import source_of
from addon.namespace.listing_pages import ListingRequest, Tokens
from addon.namespace.object_listing import ListingMerge
from addon.namespace.tombstones import Tombstones
from addon.s3 import sigv4
from addon.s3.errors import S3Error, new_request_id
from addon.s3.operations import (
    Operation,
    Route,
    Target,
    classify,
    parse_path,
    parse_virtual,
    virtual_bucket,
)
from addon.upstream import uploads
from addon.upstream.backend_client import BackendClient
from addon.upstream.deadlines import Deadline, Injector
from addon.upstream.exchange import Exchange
from addon.upstream.journey import Journey
from addon.upstream.retarget import Plan


class Router:
    """Turns client requests into exchanges, given the backends, the verifier and the users."""

    def __init__(
        self,
        config: Config,
        auth: ClientAuth,
        inject: Injector,
        client: BackendClient,
        domains: tuple[str, ...] = (),
        tombstones: Tombstones | None = None,
        *,
        users: Users,
        copies: CopyTasks,
    ) -> None:
        self.config = config
        self.backends = config.backends
        self.auth = auth
        self.use_users(users)
        self.inject = inject  # how a flow's expired deadline reaches it
        self.client = client  # the proxy's own requests
        self.tokens = Tokens(users.root.secret)  # any instance with these root keys takes them
        self.tombstones = tombstones  # None: no metaBucket, deletes do not stick
        self.domains = domains  # Host: bucket.<domain> is a virtual-hosted request
        copier = None  # copy-on-read, when a fallback migrates on read
        if any(b.migrate == "on-read" for b in self.backends[1:]):
            copier = ReadCopier(Migrator(client, self.backends[0], tombstones), copies)
        self.wiring = Wiring(tuple(self.backends), client, tombstones, copier)

    def use_users(self, users: Users) -> None:
        """Verify and authorise with `users` from now on (a reload): requests already started
        keep what they were allowed."""
        self.users = users
        self.auth.keys = users

    def _own(self, bucket: str | None) -> bool:
        """Whether `bucket` is the proxy's own (the primary's metaBucket): no client's."""
        return self.tombstones is not None and bucket == self.tombstones.meta_bucket

    def serves(self, host: str) -> bool:
        """Whether a request to `host` is S3 for us, when the proxy is not an endpoint itself
        (sidecar: regular mode, the application's own S3 endpoint)."""
        host = host.lower()
        return any(host == d or host.endswith("." + d) for d in self.domains)

    def target(self, request: http.Request) -> Target:
        """What the request addresses, path-style or virtual-hosted."""
        raw_path = request.path.partition("?")[0]
        bucket = virtual_bucket(request.host_header or "", self.domains)
        return parse_path(raw_path) if bucket is None else parse_virtual(bucket, raw_path)

    def start(self, flow: http.HTTPFlow) -> Exchange | BucketsMerge | ListingMerge:
        """Authenticate, classify, authorise, choose; raises S3Error for what must be refused."""
        signed = self._authenticate(flow.request)
        operation = self._classify(signed)
        user = self._authorise(signed, operation)
        query = sigv4.canonical_query(signed.query)
        if operation.route is Route.ALL:
            hidden = self.tombstones.meta_bucket if self.tombstones else ""
            return BucketsMerge(new_request_id(), query, self.backends, hidden, user.sees)
        if operation.name in _LISTINGS and self.config.listing == "merged":
            return self._listing(signed, operation)
        exchange = self._exchange(flow, signed, operation, query)
        asked = Asked(
            operation.name,
            operation.route,
            signed.method,
            signed.target.bucket,
            signed.target.key,
            signed.headers,
            signed.query,
        )
        after_steps.attach(self.wiring, asked, exchange)
        return exchange

    def _authenticate(self, request: http.Request) -> Signed:
        """The request's signature checked, and what it addresses (within S3's limits)."""
        check_size(request)
        raw_path, _, raw_query = request.path.partition("?")
        host = request.host_header or ""
        virtual = virtual_bucket(host, self.domains)
        verified = self.auth.verify(
            request.method,
            raw_path,
            raw_query,
            request.headers,
            host,
            v2_resource=raw_path if virtual is None else f"/{virtual}{raw_path}",
        )
        # A presigned URL's signature is the root's: backends get header auth of their own.
        pairs = [(k, v) for k, v in sigv4.query_pairs(raw_query) if k not in verified.auth_params]
        target = parse_path(raw_path) if virtual is None else parse_virtual(virtual, raw_path)
        if self._own(target.bucket):
            raise S3Error("AccessDenied")  # the proxy's own store
        key_bytes = len((target.key or "").encode("utf-8", "surrogateescape"))
        if key_bytes > MAX_KEY_BYTES:
            raise S3Error(
                "KeyTooLongError",
                extra={"Size": str(key_bytes), "MaxSizeAllowed": str(MAX_KEY_BYTES)},
            )
        method = request.method.upper()
        return Signed(method, raw_path, virtual, target, pairs, verified, request.headers)

    def _classify(self, signed: Signed) -> Operation:
        copying = "x-amz-copy-source" in signed.headers
        names = [k for k, _ in signed.query]
        operation = classify(signed.method, signed.target, names, copying)
        if operation is None:
            raise S3Error("MethodNotAllowed")
        return operation

    def _authorise(self, signed: Signed, operation: Operation) -> User:
        """The user whose key signed it, if they may do this (the root may do anything)."""
        user = self.users.find(signed.verified.access)
        source = copied_bucket(operation.name, signed.headers)
        if self._own(source):
            raise S3Error("AccessDenied")  # nor copied out of it: it holds the users' secrets
        rights.check(user, operation.name, signed.target.bucket, source)
        return user

    def _listing(self, signed: Signed, operation: Operation) -> ListingMerge:
        assert signed.target.bucket is not None
        v2 = operation.name == "ListObjectsV2"
        listing = ListingRequest.parse(v2, signed.target.bucket, signed.query, self.tokens)
        return ListingMerge(new_request_id(), listing, self.backends, self.tokens, self.tombstones)

    def _exchange(
        self, flow: http.HTTPFlow, signed: Signed, operation: Operation, query: str
    ) -> Exchange:
        """The request forwarded in-flow: to the primary, and for reads on to the fallbacks."""
        target = signed.target
        path = sigv4.canonical_path(signed.raw_path)
        if signed.virtual is not None:
            key_path = path[1:]
        elif target.bucket is not None:
            key_path = path.lstrip("/").partition("/")[2]
        else:
            key_path = ""
        plan = Plan(
            method=signed.method,
            bucket=target.bucket,
            key_path=key_path,
            query=query,
            headers=tuple(signed.headers.items(multi=True)),
            verified=signed.verified,
            body=uploads.BodyPlan.of(signed.verified, signed.headers),
        )
        reads = operation.route is Route.FALLBACK
        journey = Journey(
            operation,
            signed.method,
            target,
            self.backends if reads else self.backends[:1],
            self.config.fallback_on_5xx,
            hiding=hiding.hidden if self.tombstones is not None and reads else None,
        )
        deadline = Deadline(flow, self.inject)
        return Exchange(
            new_request_id(), resource(target), plan, journey, deadline, self.config.client_timeout
        )


@dataclass(frozen=True)
class Signed:
    """A client's request whose signature holds: what it addresses and asks."""

    method: str  # upper case
    raw_path: str
    virtual: str | None  # the bucket its Host names (virtual-hosted), else None
    target: Target
    query: list[tuple[str, str]]  # without the parameters that carried a presigned signature
    verified: Verified
    headers: http.Headers


_LISTINGS = ("ListObjects", "ListObjectsV2")
MAX_HEADER_SECTION = 8192  # S3's: the header fields and the query together
MAX_KEY_BYTES = 1024


def check_size(request: http.Request) -> None:
    """S3's limit on a request's header section, before anything else is looked at."""
    size = len(request.path.partition("?")[2])
    size += sum(len(k) + len(v) + 4 for k, v in request.headers.items(multi=True))
    if size > MAX_HEADER_SECTION:
        raise S3Error(
            "RequestHeaderSectionTooLarge", extra={"MaxSizeAllowed": str(MAX_HEADER_SECTION)}
        )


def copied_bucket(operation: str, headers: http.Headers) -> str | None:
    """The bucket a copy reads from (None for other operations); a source that names no bucket
    and key is refused, as S3 refuses it: it could not be checked."""
    if operation not in COPIES:
        return None
    source = source_of(headers.get("x-amz-copy-source", ""))
    if source is None:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            extra={"ArgumentName": "x-amz-copy-source"},
        )
    return source[0]


def resource(target: Target) -> str:
    """The Resource S3 names in its errors: /bucket/key."""
    return "/" + "/".join(p for p in (target.bucket, target.key) if p is not None)
