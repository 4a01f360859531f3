"""The S3 protocol, as any S3 server or client speaks it: the operation table, S3's XML errors
and documents, SigV4 (canonical requests, signing keys, chunk signatures), the aws-chunked stream
transducer, browser form uploads (the form, its file, its policy), the checksums a body must hash
to, Content-Encoding, and text safe for a log line.

Knows nothing of backends, users or mitmproxy's internals.

May import: nothing of the addon's.
"""
