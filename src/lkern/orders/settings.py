"""Orders' own settings, read like the platform's (``LKERN_`` / ``LKERN_ORDERS_``)."""

from __future__ import annotations

from pydantic import Field

from lkern.platform.settings import Settings


class OrdersSettings(Settings):
    contacts_grpc_target: str = Field(
        default="127.0.0.1:5101", description="host:port of the contacts gRPC service."
    )
    inventory_grpc_target: str = Field(
        default="127.0.0.1:5104", description="host:port of the inventory gRPC service."
    )
