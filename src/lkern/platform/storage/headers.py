"""HTTP headers of a stored file's download, the same whether the service or S3 answers."""

from __future__ import annotations

from urllib.parse import quote


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the exact name (RFC 6266)."""
    fallback = filename.encode("ascii", "replace").decode().replace('"', "'").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"
