"""What travels in gRPC metadata: the trace and the caller."""

from __future__ import annotations

TRACEPARENT = "traceparent"
CALLER_SERVICE = "x-lkern-caller"
AUTHORIZATION = "authorization"
SERVICE_CREDENTIAL = "x-lkern-service-credential"
