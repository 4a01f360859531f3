"""`s3-multi check`: whether the backends agree as the config says they should, and `--repair`
to make them. The sorted listings of the primary, the other backends and the tombstones are
joined side by side (`addon.namespace.listing_join`, no I/O), each key's row is classified
(`differences`, no I/O),
and a run (`run`) lists, asks what the listings cannot tell, and repairs, in bounded memory
whatever the bucket's size; `command` is the command line and its output.

May import: everything below it (`addon.s3` to `addon.migration`).
"""
