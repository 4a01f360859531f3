"""s3-multi: several S3 backends behind one S3 endpoint, as a mitmproxy addon."""
