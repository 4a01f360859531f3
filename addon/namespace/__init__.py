"""One namespace over several backends: merged listings (ListBuckets, ListObjects v1/v2: the
sans-IO merge and pages), tombstones that make deletes stick, copies whose source only a
fallback has, a bucket only a fallback has taken on by the primary, and an object's metadata
carried with a copy.

May import: everything below it (`addon.s3` to `addon.upstream`).
"""
