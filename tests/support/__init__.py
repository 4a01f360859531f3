"""Helpers the test modules share: processes, the proxy, clients, raw HTTP, signing."""
