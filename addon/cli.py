"""The `s3-multi` command: VersityGW's `versitygw s3-multi` command line, on mitmproxy.

    s3-multi --config FILE --access AK --secret SK --port :7070 [--region R] [--debug]
             [--workers N] [--drain-timeout SECONDS]
             [--users FILE|s3://METABUCKET/KEY] [-w FLOWS]
    s3-multi check --config FILE [--bucket B ...] [--prefix P] [--from NAME ...] [--json]
                   [--repair] [--migrate] [--dry-run] [--jobs N]
    s3-multi tombstones --config FILE [--prune]
    s3-multi migrate --config FILE [--bucket B ...] [--from NAME] [--dry-run] [--delete-source]
                     [--jobs N]

Runs mitmproxy in-process in reverse mode with the same addon script that `mitmdump -s` loads
(`addon/multi.py`), so both ways of running answer the same; with `--workers N` (N > 1), N such
processes on the same port, started and kept running by this one (see `workers`). The command
runs on a master of its own (`addon.mitm.master`: only the addons an S3 endpoint needs, the
flow saver only with `-w`, cached dispatch, debug-only checks off); `mitmdump -s` and mitmweb
run mitmproxy as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from addon.auth.checks import Key
from addon.auth.users import load_users
from addon.config.files import ConfigError
from addon.config.settings import load_config
from addon.ops import subcommands
from addon.ops.users_source import polled

ADDON_SCRIPT = Path(__file__).with_name("multi.py")
# Every request is re-routed by the addon; this target only satisfies reverse mode and, with
# lazy connections, is never contacted.
REVERSE_PLACEHOLDER = "reverse:http://127.0.0.1:1"


def parse_listen(value: str) -> tuple[str, int]:
    """`:7070` (all interfaces) or `HOST:PORT`, as versitygw's --port takes it."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected :PORT or HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def _bool_env(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes", "on")


def _env(*names: str) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


def build_parser() -> argparse.ArgumentParser:
    from addon.ops import workers  # as mitmproxy in serve(): the subcommands never need it

    named = "\n".join(f"  {n:<12}{line}" for n, (_, line) in subcommands.SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="s3-multi",
        usage="%(prog)s [options] | %(prog)s {" + ",".join(subcommands.SUBCOMMANDS) + "} ...",
        description="Serve several S3 backends as one S3 endpoint: writes go to the first "
        "(primary) backend, reads fall back to the next ones on 'not found'.",
        epilog=f"subcommands (s3-multi NAME --help for theirs):\n{named}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config",
        default=_env("VGW_S3_MULTI_CONFIG"),
        help="backends file, YAML or JSON ($VGW_S3_MULTI_CONFIG)",
    )
    parser.add_argument(
        "--access",
        default=_env("ROOT_ACCESS_KEY_ID", "ROOT_ACCESS_KEY"),
        help="root access key clients sign with ($ROOT_ACCESS_KEY_ID or $ROOT_ACCESS_KEY)",
    )
    parser.add_argument(
        "--secret",
        default=_env("ROOT_SECRET_ACCESS_KEY", "ROOT_SECRET_KEY"),
        help="root secret key; prefer $ROOT_SECRET_ACCESS_KEY (or $ROOT_SECRET_KEY): "
        "command-line arguments show in process lists",
    )
    parser.add_argument(
        "--port",
        type=parse_listen,
        default=parse_listen(os.environ.get("VGW_PORT") or ":7070"),
        help="listen address, :PORT or HOST:PORT ($VGW_PORT, default :7070)",
    )
    parser.add_argument("--region", default="us-east-1", help="region clients sign for")
    parser.add_argument(
        "--users",
        default="",
        help="gateway users file (YAML or JSON) or s3://METABUCKET/KEY "
        "(default: the config's users, or $VGW_S3_MULTI_USERS)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=_bool_env("VGW_S3_MULTI_DEBUG"),
        help="log every request: backends tried, status, time ($VGW_S3_MULTI_DEBUG)",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=_positive(os.environ.get("VGW_S3_MULTI_WORKERS") or str(workers.cores())),
        help="proxy processes on the port, balanced by the kernel; 1 runs the proxy in this "
        "process ($VGW_S3_MULTI_WORKERS, default: the number of cores)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=_positive,
        default=30,
        help="seconds SIGTERM lets requests in flight finish before stopping (default 30)",
    )
    parser.add_argument(
        "-w",
        "--save-stream-file",
        default="",
        metavar="FLOWS",
        help="save every flow to FLOWS, as mitmdump -w does (+FLOWS appends); each worker of "
        "several saves to FLOWS.N, N its number",
    )
    parser.add_argument("--worker", type=_positive, help=argparse.SUPPRESS)  # set by workers
    return parser


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number, 1 or more, got {value!r}")
    return int(value)


def _named_as_gateway(record: logging.LogRecord) -> bool:
    """mitmproxy's "reverse proxy to <placeholder> listening at" says "s3-multi listening at"."""
    text = record.getMessage()
    placeholder = "reverse proxy to " + REVERSE_PLACEHOLDER.removeprefix("reverse:")
    if text.startswith(placeholder):
        record.msg, record.args = "s3-multi" + text.removeprefix(placeholder), ()
    return True


async def serve(
    *,
    config: str,
    access: str,
    secret: str,
    listen: tuple[str, int],
    region: str = "us-east-1",
    debug: bool = False,
    users: str = "",
    drain_timeout: int = 30,
    worker: int | None = None,
    save_flows: str = "",
) -> int:
    """Run the proxy until SIGINT/SIGTERM; returns the exit status (2 for a bad config).
    As `worker` of several, its port is shared with the others (SO_REUSEPORT). `save_flows`:
    the file every flow is saved to (mitmproxy's Save addon), none when empty."""
    # Imported here, not above: mitmproxy's addons and proxy servers take a second of CPU and
    # 30 MB to import, and the subcommands (check, migrate, tombstones) never run the proxy.
    from mitmproxy import exceptions
    from mitmproxy.addons.script import load_script
    from mitmproxy.options import Options

    from addon.mitm import debug_checks, shared_port
    from addon.mitm.master import lean_master
    from addon.ops import workers

    debug_checks.turn_off()
    if worker is not None:
        shared_port.install()
        os.environ[workers.WORKER_VARIABLE] = str(worker)  # the addon names it in its log
    options = Options(
        listen_host=listen[0],
        listen_port=listen[1],
        mode=[REVERSE_PLACEHOLDER],
    )
    logging.getLogger().setLevel(logging.INFO)  # as mitmdump does; the term log filters by level
    # Per-connection lines drown the per-request ones; mitmdump still shows them.
    logging.getLogger("mitmproxy.proxy.server").setLevel(logging.WARNING)
    logging.getLogger("mitmproxy.proxy.mode_servers").addFilter(_named_as_gateway)
    addon = load_script(str(ADDON_SCRIPT))
    if addon is None:
        return 1  # load_script has logged why
    master = lean_master(options, addon, save_flows=bool(save_flows))
    # Declared by mitmproxy's own addons, so set once the master has them. The client's Host is
    # part of its signature; connections go only where the addon sends them.
    master.options.update(keep_host_header=True, connection_strategy="lazy")
    if save_flows:
        master.options.update(save_stream_file=save_flows)
    # The secret reaches the addon as the variable it reads, never as an option: option values
    # show wherever options are listed.
    os.environ["ROOT_SECRET_ACCESS_KEY"] = secret
    try:
        master.options.update(
            s3multi_config=config,
            s3multi_access=access,
            s3multi_region=region,
            s3multi_debug=debug,
            s3multi_drain_timeout=drain_timeout,
            s3multi_users=users,
        )
    except exceptions.OptionsError as e:
        print(f"s3-multi: {e}", file=sys.stderr)
        return 2
    # SIGTERM (drain) and SIGHUP (reload) are the addon's, as under mitmdump.
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, master.shutdown)
    await master.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in subcommands.SUBCOMMANDS:
        return subcommands.run(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    missing = [f"--{n}" for n in ("config", "access", "secret") if not getattr(args, n)]
    if missing:
        print(f"s3-multi: missing {', '.join(missing)} (see --help)", file=sys.stderr)
        return 2
    if args.worker is None and args.workers > 1:
        return _supervise(args)
    running = serve(
        config=args.config,
        access=args.access,
        secret=args.secret,
        listen=args.port,
        region=args.region,
        debug=args.debug,
        users=args.users,
        drain_timeout=args.drain_timeout,
        worker=args.worker,
        save_flows=args.save_stream_file,
    )
    try:
        return asyncio.run(running)
    except KeyboardInterrupt:  # Ctrl-C before the proxy runs (a worker still starting)
        return 130


def _supervise(args: argparse.Namespace) -> int:
    """Start and keep `args.workers` workers, each this command as one process."""
    from addon.ops import workers

    try:  # one line now, rather than one per worker in a restart loop
        config = load_config(args.config)
        location = args.users or config.users
        if location and not polled(location):
            load_users(location, Key(args.access, args.secret))
    except ConfigError as e:
        print(f"s3-multi: {e}", file=sys.stderr)
        return 2
    host, port = args.port
    busy = workers.port_is_free(host, port)
    if busy:
        print(f"s3-multi: {busy}", file=sys.stderr)
        return 1
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    command = [sys.executable, "-m", "addon.cli", "--config", args.config]
    command += ["--access", args.access, "--port", listen, "--region", args.region]
    command += ["--drain-timeout", str(args.drain_timeout), *(["--debug"] * args.debug)]
    command += ["--users", args.users] if args.users else []
    flows = args.save_stream_file
    # The secret as a variable, never on a command line (process lists show those).
    env = {**os.environ, "ROOT_SECRET_ACCESS_KEY": args.secret}
    grace = args.drain_timeout + 10

    def worker(n: int) -> list[str]:
        return [*command, *(["-w", f"{flows}.{n}"] if flows else []), "--worker", str(n)]

    return workers.supervise(args.workers, worker, env, grace)


if __name__ == "__main__":
    sys.exit(main())
