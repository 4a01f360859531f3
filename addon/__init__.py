"""s3-multi: several S3 backends behind one S3 endpoint, as a mitmproxy addon.

The subpackages, in their declared order: each may import those before it, never one after it
(tests/unit/test_layers.py enforces it). From the S3 protocol up to the entry points:

- `s3`: the S3 protocol (operations, errors, XML, SigV4, aws-chunked, body checks)
- `config`: the config file and its variables
- `auth`: client authentication, gateway users and their rights
- `mitm`: mitmproxy's private API, all of it and nothing else
- `upstream`: the backends, re-signing, the proxy's own requests, one request's journey
- `namespace`: merged listings, tombstones, copies from fallbacks, bucket adoption
- `migration`: copy-on-read and the drain of `s3-multi migrate`
- `replication`: replicas kept equal to the primary (repair jobs, the outbox, leases,
  reconciliation), and the certificates that let them answer reads while the primary cannot
- `check`: `s3-multi check`: the backends compared by their listings, and repaired
- `ops`: in-flight requests and SIGTERM drain, metrics, status paths, workers, users source
- `gateway`: options, the setup, the router and its after-steps
- `local`: local S3 servers for the demo and the tests

The entry points sit above them all: `multi.py` (the mitmproxy addon, loaded as a script by
`mitmdump -s addon/multi.py` and by the `s3-multi` command), `cli.py` (`s3-multi`) and `demo.py`
(`s3-multi-demo`).
"""

LAYERS = (
    "s3",
    "config",
    "auth",
    "mitm",
    "upstream",
    "namespace",
    "migration",
    "replication",
    "check",
    "ops",
    "gateway",
    "local",
)
ENTRY_POINTS = ("multi", "cli", "demo")
