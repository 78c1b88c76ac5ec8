"""L-KERN."""
