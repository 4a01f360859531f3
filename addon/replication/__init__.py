"""Replicas (`replicate: sync|async`) kept equal to the primary: the repair job that makes a
replica's key equal the primary's and never the wrong way round (`plan`, `repair`, over
`sides`), the per-process replicator of jobs, the outbox of misses in the primary's metaBucket
with a lease per replica for who drains it, what a client's write sets off for the replicas
(`replica_writes`), the listing comparison of reconciliation, the background work of one
proxy process (`service`), and the in-sync certificates that let a replica answer reads while
the primary cannot (`certificates`).

May import: everything below it (`addon.s3` to `addon.migration`).
"""
