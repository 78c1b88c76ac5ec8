"""The inventory service (lkms104): an electronics-parts store."""
