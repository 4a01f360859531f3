"""The addon's mitmproxy options (`--set s3multi_...`), and the variables read in their place."""

from __future__ import annotations

import os

from mitmproxy import ctx

from addon.config.settings import DEFAULT_REGION

# option -> the variables read when it is not set (the secret is never an option default:
# defaults show in `--options` and in mitmweb's options page).
FROM_ENVIRONMENT = {
    "s3multi_config": ("VGW_S3_MULTI_CONFIG",),
    "s3multi_access": ("ROOT_ACCESS_KEY_ID", "ROOT_ACCESS_KEY"),
    "s3multi_secret": ("ROOT_SECRET_ACCESS_KEY", "ROOT_SECRET_KEY"),
}


def setting(name: str) -> str:
    """An option's value, else the first of its variables that is set."""
    value = getattr(ctx.options, name)
    variables = FROM_ENVIRONMENT.get(name, ())
    return value or next((os.environ[v] for v in variables if os.environ.get(v)), "")


def debug() -> bool:
    """Whether each request gets its log line (the option, or VGW_S3_MULTI_DEBUG)."""
    variable = os.environ.get("VGW_S3_MULTI_DEBUG", "").lower()
    return ctx.options.s3multi_debug or variable in ("1", "true", "yes", "on")


def domains() -> tuple[str, ...]:
    """The domains of virtual-hosted requests, lower case."""
    return tuple(d.strip().lower() for d in ctx.options.s3multi_domain.split(",") if d.strip())


def add_options(loader) -> None:
    loader.add_option(
        "s3multi_config",
        str,
        "",
        "Backends file (YAML or JSON); the first backend is the primary. "
        "Default: $VGW_S3_MULTI_CONFIG.",
    )
    loader.add_option(
        "s3multi_access",
        str,
        "",
        "Root access key that clients sign with. Default: $ROOT_ACCESS_KEY_ID.",
    )
    loader.add_option(
        "s3multi_secret",
        str,
        "",
        "Root secret key that clients sign with. Default: $ROOT_SECRET_ACCESS_KEY. "
        "Prefer the variable: an option's value shows in mitmweb and in process lists.",
    )
    loader.add_option("s3multi_region", str, DEFAULT_REGION, "Region clients sign for.")
    loader.add_option(
        "s3multi_domain",
        str,
        "",
        "Comma-separated domains of virtual-hosted requests: Host bucket.DOMAIN addresses "
        "the bucket (for example s3.example.com, or s3.amazonaws.com for a sidecar). "
        "Path-style requests work either way.",
    )
    loader.add_option(
        "s3multi_debug",
        bool,
        False,
        "Log one line per request: operation, backends tried with status and time, "
        "which one answered. Also on with $VGW_S3_MULTI_DEBUG.",
    )
    loader.add_option(
        "s3multi_drain_timeout",
        int,
        30,
        "Seconds that SIGTERM lets requests in flight finish (no new connections meanwhile) "
        "before the proxy stops; SIGINT or a second SIGTERM stops at once.",
    )
    loader.add_option(
        "s3multi_users",
        str,
        "",
        "Users file (YAML or JSON) or s3://<metaBucket>/<key>: gateway users' keys and "
        "rights beside the root keys. Set it again to reload. Default: the config's `users` "
        "($VGW_S3_MULTI_USERS).",
    )
