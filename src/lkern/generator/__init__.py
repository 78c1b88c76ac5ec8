"""``lkern new-service``: a new service package written the house's way (SPEC §14)."""
