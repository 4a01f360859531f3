"""The benchmark: s3-multi beside plain mitmdump, the rclone union and the backends, in one run.

Not a test: `python -m tests.benchmark [--quick]` (tests/benchmark/README.md). Modules: `legs` (what
is measured, as data), `services` and `backends` (the processes), `load` (wrk and the large-object
client), `measurement` (memory, CPU, round trips), `runner`, `report`, `settings`, `machine`;
`suite` is what it borrows from the test suite's helpers. `chaos` is a run of its own
(`python -m tests.benchmark.chaos`): replication and failover under faults, audited.
"""
