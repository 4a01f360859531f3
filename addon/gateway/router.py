"""A client request on its way in: authenticate, classify, authorise, choose where it goes.

`Router.start` reads top-down: the request is verified against the key table (the root keys and
the gateway users', `addon.auth.users`), classified with the operation table, checked against
the user's rights (`addon.auth.rights`), given the backends' outlook (which are marked down, which
replicas are certified to answer reads the primary cannot: `addon.upstream.health`,
`addon.replication.certificates`), and turned into what carries it out: a `BucketsMerge` or
`ListingMerge` (answered by the proxy from every backend), or an `Exchange` (forwarded in-flow to
the primary, and to the next backends on "not found" for reads) with what else it sets off
chosen by `after_steps.RULES`. Whatever must be refused is raised as an S3Error before anything
is forwarded.
"""

from __future__ import annotations

from mitmproxy import http

from addon.auth import rights
from addon.auth.client_auth import ClientAuth
from addon.auth.rights import User
from addon.auth.users import Users
from addon.config.settings import Config
from addon.gateway import after_steps, form_uploads
from addon.gateway.after_steps import Wiring
from addon.gateway.signed import Signed, asked, check_key, check_size, copied_bucket, resource
from addon.migration.copier import Migrator
from addon.migration.copy_on_read import CopyTasks, ReadCopier
from addon.namespace import hiding
from addon.namespace.bucket_listing import BucketsMerge
from addon.namespace.listing_pages import ListingRequest, Tokens
from addon.namespace.object_listing import ListingMerge
from addon.namespace.own_writes import nobody
from addon.namespace.tombstones import Tombstones
from addon.replication.certificates import Certificates
from addon.replication.service import Replication
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
from addon.upstream.form_upload import FormPlan
from addon.upstream.health import Health, Outlook
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
        health: Health | None = None,
        certificates: Certificates | None = None,
        replication: Replication | None = None,
    ) -> None:
        self.config = config
        self.backends = config.backends
        self.health = health or Health(b.name for b in config.backends)
        self.certificates = certificates  # None: no replica answers reads in failover
        # Every configured metaBucket is the proxy's: tombstones, users, certificates.
        self.own_buckets = frozenset(b.meta_bucket for b in self.backends if b.meta_bucket)
        self.auth = auth
        self.use_users(users)
        self.inject = inject  # how a flow's expired deadline reaches it
        self.client = client  # the proxy's own requests
        self.tokens = Tokens(users.root.secret)  # any instance with these root keys takes them
        self.tombstones = tombstones  # None: no metaBucket, deletes do not stick
        self.domains = domains  # Host: bucket.<domain> is a virtual-hosted request
        self.replication = replication  # None: no replicas
        own_write = replication.own_write if replication is not None else nobody
        copier = None  # copy-on-read, when a fallback migrates on read
        if any(b.migrate == "on-read" for b in self.backends[1:]):
            migrator = Migrator(client, self.backends[0], tombstones, own_write)
            copier = ReadCopier(migrator, copies)
        replicas = replication.jobs if replication is not None else {}
        self.wiring = Wiring(tuple(self.backends), client, tombstones, copier, replicas, own_write)

    def use_users(self, users: Users) -> None:
        """Verify and authorise with `users` from now on (a reload): requests already started
        keep what they were allowed."""
        self.users = users
        self.auth.keys = users

    def _own(self, bucket: str | None) -> bool:
        """Whether `bucket` is the proxy's own (a metaBucket): no client's."""
        return bucket in self.own_buckets

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
        if signed.form is not None:  # its form is its signature: checked once it is read
            return self._form_upload(flow, signed, operation)
        user = self._authorise(signed, operation)
        query = sigv4.canonical_query(signed.query)
        outlook = self._outlook()
        if operation.route is Route.ALL:
            return self._buckets(query, user, outlook)
        if operation.name in _LISTINGS and self.config.listing == "merged":
            return self._listing(signed, operation, outlook)
        exchange = self._exchange(flow, signed, operation, query, outlook)
        after_steps.attach(self.wiring, asked(signed, operation), exchange)
        return exchange

    def _authenticate(self, request: http.Request) -> Signed:
        """The request's signature checked (a form's: later), and what it addresses (within
        S3's limits)."""
        check_size(request)
        raw_path, _, raw_query = request.path.partition("?")
        host = request.host_header or ""
        virtual = virtual_bucket(host, self.domains)
        target = parse_path(raw_path) if virtual is None else parse_virtual(virtual, raw_path)
        pairs = sigv4.query_pairs(raw_query)
        method = request.method.upper()
        form = form_uploads.form_boundary(method, target, pairs, request.headers)
        verified = form_uploads.UNSIGNED
        if form is None:
            verified = self.auth.verify(
                request.method,
                raw_path,
                raw_query,
                request.headers,
                host,
                v2_resource=raw_path if virtual is None else f"/{virtual}{raw_path}",
            )
        # A presigned URL's signature is the root's: backends get header auth of their own.
        pairs = [(k, v) for k, v in pairs if k not in verified.auth_params]
        if self._own(target.bucket):
            raise S3Error("AccessDenied")  # the proxy's own store
        check_key(target)
        return Signed(method, raw_path, virtual, target, pairs, verified, request.headers, form)

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

    def _outlook(self) -> Outlook:
        """What this request counts on: the backends marked down now, and the replicas that
        may answer reads the primary cannot (none when readFailover is off)."""
        read_failover = self.config.read_failover
        serving = self.certificates.serving() if self.certificates and read_failover else ()
        return Outlook(self.health.down(), serving, read_failover)

    def _buckets(self, query: str, user: User, outlook: Outlook) -> BucketsMerge:
        own, down = self.own_buckets, outlook.down
        return BucketsMerge(new_request_id(), query, self.backends, own, user.sees, down=down)

    def _listing(self, signed: Signed, operation: Operation, outlook: Outlook) -> ListingMerge:
        assert signed.target.bucket is not None
        v2 = operation.name == "ListObjectsV2"
        listing = ListingRequest.parse(v2, signed.target.bucket, signed.query, self.tokens)
        return ListingMerge(
            new_request_id(), listing, self.backends, self.tokens, self.tombstones, outlook
        )

    def _form_upload(self, flow: http.HTTPFlow, signed: Signed, operation: Operation) -> Exchange:
        """A browser form upload, forwarded to the primary once `FormGate` accepts its form."""
        assert signed.form is not None
        gate = form_uploads.FormGate(self, asked(signed, operation))
        body = FormPlan(signed.form, gate)
        gate.exchange = self._exchange(flow, signed, operation, "", self._outlook(), body)
        return gate.exchange

    def _exchange(
        self,
        flow: http.HTTPFlow,
        signed: Signed,
        operation: Operation,
        query: str,
        outlook: Outlook,
        body: uploads.Body | None = None,
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
            body=body or uploads.BodyPlan.of(signed.verified, signed.headers),
        )
        reads = operation.route is Route.FALLBACK
        journey = Journey(
            operation,
            signed.method,
            target,
            self.backends if reads else self.backends[:1],
            self.config.fallback_on_5xx,
            hiding=hiding.hidden if self.tombstones is not None and reads else None,
            outlook=outlook,
            health=self.health,
        )
        deadline = Deadline(flow, self.inject)
        return Exchange(
            new_request_id(), resource(target), plan, journey, deadline, self.config.client_timeout
        )


_LISTINGS = ("ListObjects", "ListObjectsV2")
