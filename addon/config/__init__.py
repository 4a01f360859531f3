"""The config file and its variables: the backends (`settings.Backend`), the proxy-wide
settings, strict YAML/JSON reading and the one-line messages that never echo a credential.

May import: `addon.s3`.
"""
