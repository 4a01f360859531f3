"""Who is asking: a client's signature verified (SigV4 by header or presigned URL, SigV2 both
ways, a browser form's) against the root keys and the gateway users', and what each user may do
(rights).

May import: `addon.s3`, `addon.config`.
"""
