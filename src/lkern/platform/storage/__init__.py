"""Object storage (§8): one small port, local files and S3-compatible adapters."""
