"""Test equipment the test modules share: processes, proxy, clients, raw HTTP, signing, fakes."""
