"""Test equipment shared by the end-to-end tests: servers and clients that are not S3 libraries."""
