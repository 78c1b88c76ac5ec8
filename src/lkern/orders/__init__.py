"""Orders (lkms102): what customers buy, from draft to closed."""
