"""A client request on its way in: authenticate, classify, choose where it goes.

`Router.start` verifies the request against the key table (the root keys and the gateway users',
`addon/users.py`), classifies it with the operation table, checks the user's rights on it
(`addon/rights.py`) and returns what will carry it out: an `Exchange` (forwarded in-flow to the
primary, and to the next backends on "not found" for reads) or a `BucketsMerge` (answered by the
proxy from every backend). Whatever must be refused is raised as an S3Error before anything is
forwarded.
"""

from __future__ import annotations

from mitmproxy import http

from addon.auth import rights
from addon.auth.client_auth import ClientAuth
from addon.auth.users import Users
from addon.config.settings import Config
from addon.migration.copier import Migrator
from addon.migration.copy_on_read import CopiesOnRead
from addon.namespace.adoption import NOT_ADOPTED, WRITES, AdoptBucket
from addon.namespace.bucket_listing import BucketsMerge
from addon.namespace.fallback_copy import CopyFromFallback, source_of
from addon.namespace.listing_pages import ListingRequest, Tokens
from addon.namespace.object_listing import ListingMerge
from addon.namespace.tombstones import BURIES, CLEARS, AfterWrite, Tombstones, lookup
from addon.s3 import sigv4
from addon.s3.errors import S3Error, new_request_id
from addon.s3.operations import Route, Target, classify, parse_path, parse_virtual, virtual_bucket
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
        self.copies = None  # copy-on-read, when a fallback migrates on read
        if any(b.migrate == "on-read" for b in self.backends[1:]):
            self.copies = CopiesOnRead(Migrator(client, self.backends[0], tombstones))

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
        """Authenticate and classify; raises S3Error for what must be refused."""
        request = flow.request
        check_size(request)
        raw_path, _, raw_query = request.path.partition("?")
        host = request.host_header or ""
        bucket = virtual_bucket(host, self.domains)
        verified = self.auth.verify(
            request.method,
            raw_path,
            raw_query,
            request.headers,
            host,
            v2_resource=raw_path if bucket is None else f"/{bucket}{raw_path}",
        )
        body = uploads.BodyPlan.of(verified, request.headers)
        pairs = sigv4.query_pairs(raw_query)
        # A presigned URL's signature is the root's: backends get header auth of their own.
        pairs = [(k, v) for k, v in pairs if k not in verified.auth_params]
        target = parse_path(raw_path) if bucket is None else parse_virtual(bucket, raw_path)
        if self._own(target.bucket):
            raise S3Error("AccessDenied")  # the proxy's own store
        key_bytes = len((target.key or "").encode("utf-8", "surrogateescape"))
        if key_bytes > MAX_KEY_BYTES:
            raise S3Error(
                "KeyTooLongError",
                extra={"Size": str(key_bytes), "MaxSizeAllowed": str(MAX_KEY_BYTES)},
            )
        operation = classify(
            request.method, target, [k for k, _ in pairs], "x-amz-copy-source" in request.headers
        )
        if operation is None:
            raise S3Error("MethodNotAllowed")
        user = self.users.find(verified.access)
        source = copied_bucket(operation.name, request)
        if self._own(source):
            raise S3Error("AccessDenied")  # nor copied out of it: it holds the users' secrets
        rights.check(user, operation.name, target.bucket, source)
        query = sigv4.canonical_query(pairs)
        if operation.route is Route.ALL:
            hidden = self.tombstones.meta_bucket if self.tombstones else ""
            return BucketsMerge(new_request_id(), query, self.backends, hidden, user.sees)
        if operation.name in _LISTINGS and self.config.listing == "merged":
            assert target.bucket is not None
            listing = ListingRequest.parse(
                operation.name == "ListObjectsV2", target.bucket, pairs, self.tokens
            )
            return ListingMerge(
                new_request_id(), listing, self.backends, self.tokens, self.tombstones
            )
        path = sigv4.canonical_path(raw_path)
        if bucket is not None:
            key_path = path[1:]
        elif target.bucket is not None:
            key_path = path.lstrip("/").partition("/")[2]
        else:
            key_path = ""
        plan = Plan(
            method=request.method,
            bucket=target.bucket,
            key_path=key_path,
            query=query,
            headers=tuple(request.headers.items(multi=True)),
            verified=verified,
            body=body,
        )
        reads = operation.route is Route.FALLBACK
        candidates = self.backends if reads else self.backends[:1]
        tombstones = self.tombstones
        journey = Journey(
            operation,
            request.method.upper(),
            target,
            candidates,
            self.config.fallback_on_5xx,
            tombstones=tombstones is not None and reads,
        )
        exchange = Exchange(
            new_request_id(),
            resource(target),
            plan,
            journey,
            Deadline(flow, self.inject),
            self.config.client_timeout,
        )
        if self.copies is not None and reads:
            exchange.copy_on_read = self.copies.for_read(
                operation.name, request.method, target.bucket, target.key, request.headers, pairs
            )
        bucket = target.bucket
        writes = request.method.upper() in WRITES and operation.name not in NOT_ADOPTED
        if bucket is not None and writes and len(self.backends) > 1:
            primary, *fallbacks = self.backends
            exchange.settle.append(AdoptBucket(self.client, primary, tuple(fallbacks), plan))
        if operation.name in COPIES and len(self.backends) > 1:
            primary, *fallbacks = self.backends
            part = operation.name == "UploadPartCopy"
            copy = CopyFromFallback(self.client, primary, tuple(fallbacks), plan, part, tombstones)
            exchange.settle.append(copy)
        if tombstones is not None and bucket is not None:
            if reads and target.key is not None:
                exchange.tombstone = lookup(tombstones.meta_bucket, bucket, target.key)
            versioned = "versionId" in dict(pairs)
            if operation.name in CLEARS | BURIES and not versioned:
                exchange.settle.append(AfterWrite(tombstones, operation.name, bucket, target.key))
                exchange.whole_body = operation.name == "DeleteObjects"
        return exchange


_LISTINGS = ("ListObjects", "ListObjectsV2")
COPIES = ("CopyObject", "UploadPartCopy")
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


def copied_bucket(operation: str, request: http.Request) -> str | None:
    """The bucket a copy reads from (None for other operations); a source that names no bucket
    and key is refused, as S3 refuses it: it could not be checked."""
    if operation not in COPIES:
        return None
    source = source_of(request.headers.get("x-amz-copy-source", ""))
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
