#!/usr/bin/env python3
"""The image's HEALTHCHECK: GET a service's health route, exit 0 when it answers 200.

``lkern-healthcheck URL`` checks that URL. Without one it finds the service
from the container's command (``lkern serve SERVICE``, PID 1) and checks its
``/health/ready`` on the port the service listens on. Standard library only:
it runs every few seconds, and importing the application would take seconds.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

#: SPEC §1's REST ports; tests/deploy/test_image.py holds them to the service registry.
REST_PORTS = {
    "identity": 8100,
    "contacts": 8101,
    "orders": 8102,
    "issues": 8103,
    "inventory": 8104,
}
READY_PATH = "/health/ready"
TIMEOUT_SECONDS = 2.0


def served_service(cmdline: list[str]) -> str | None:
    """The service a ``lkern serve SERVICE`` command runs (``identity`` for ``lkern run``)."""
    if "serve" in cmdline:
        index = cmdline.index("serve")
        return cmdline[index + 1] if index + 1 < len(cmdline) else None
    if "run" in cmdline:
        return "identity"
    return None


def service_url(service: str, environ: dict[str, str]) -> str:
    """The readiness URL of ``service``, honouring ``LKERN_<SERVICE>_PORT`` and ``LKERN_PORT``."""
    port = environ.get(f"LKERN_{service.upper()}_PORT") or environ.get("LKERN_PORT")
    return f"http://127.0.0.1:{port or REST_PORTS[service]}{READY_PATH}"


def check(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        sys.stderr.write(f"{url}: {exc}\n")
        return 1


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        return check(argv[1])
    cmdline = Path("/proc/1/cmdline").read_bytes().decode().split("\0")
    service = served_service(cmdline)
    if service is None or service not in REST_PORTS:
        # Not a server (a migration or another one-shot command): nothing to probe.
        return 0
    return check(service_url(service, dict(os.environ)))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
