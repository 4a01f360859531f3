"""Backend topologies: which kind of local S3 server plays primary, secondary and tertiary.

A test on the backends runs on all-moto unless marked `topologies(name, ...)` (tests/conftest.py).
"""

from __future__ import annotations

BACKEND_NAMES = ("primary", "secondary", "tertiary")
TOPOLOGIES = {
    "moto": ("moto", "moto", "moto"),
    "seaweedfs-primary": ("seaweedfs", "moto", "moto"),
    "seaweedfs-fallbacks": ("moto", "seaweedfs", "seaweedfs"),
    "seaweedfs": ("seaweedfs", "seaweedfs", "seaweedfs"),
}
# Beside those, for the suites that name it (replication: SeaweedFS on both sides, as in the
# kill and restart tests); not run by the suites that run every topology.
KINDS = {**TOPOLOGIES, "seaweedfs": ("seaweedfs", "seaweedfs", "seaweedfs")}
# For suites whose requests all go to the primary: a SeaweedFS fallback would add nothing.
EACH_PRIMARY = ("moto", "seaweedfs-primary")
