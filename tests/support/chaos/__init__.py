"""The chaos run of issue 21 (run.py says what it does), shared by tests/e2e/replication/
test_chaos.py and tests/benchmark/chaos.py."""
