"""A real S3-protocol server for the tests: ``moto_server`` from ``moto[server]``.

It keeps objects in memory, so a test that needs S3 to "go down" without
losing them puts a ``TcpProxy`` in front and closes that instead.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.support.processes import free_port

BINARY = Path(sys.executable).parent / "moto_server"
#: moto accepts any credentials; botocore insists on having some.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "lkern-test",
    "AWS_SECRET_ACCESS_KEY": "lkern-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class S3Unavailable(RuntimeError):
    pass


class MotoServer:
    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, bucket: str, endpoint: str | None = None) -> str:
        return f"s3://{bucket}?endpoint={endpoint or self.endpoint}&region=us-east-1"

    def start(self, timeout: float = 20) -> None:
        if not BINARY.exists():
            raise S3Unavailable(f"no moto_server at {BINARY} (install moto[server])")
        self.process = subprocess.Popen(
            [str(BINARY), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **CREDENTIALS},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise S3Unavailable(f"moto_server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise S3Unavailable("moto_server did not start listening")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None
