"""What every L-KERN service shares: persistence, errors, HTTP conventions, logging, runtime."""
