"""Moving objects from the fallbacks to the primary: the conditional copy that never wins
against a client (`copier`, over `object_copy` and `source`, which replication copies with
too), copy-on-read (a tee of the bytes a client reads), and the drain of `s3-multi migrate`
with its progress line.

May import: everything below it (`addon.s3` to `addon.namespace`).
"""
