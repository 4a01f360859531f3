"""The root keys every test client signs with, and the region the proxy verifies for."""

ROOT_ACCESS = "test-root-access"
ROOT_SECRET = "test-root-secret-do-not-log"
REGION = "us-east-1"
