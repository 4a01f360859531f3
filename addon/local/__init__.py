"""Local S3 servers for the demo, the tests and the benchmark: moto in auth mode and SeaweedFS,
each with its own keys.

May import: any layer before it; it uses none.
"""
