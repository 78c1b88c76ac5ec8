"""Identity (lkms100): users, their tokens, and the keys that sign them."""
