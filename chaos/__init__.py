"""chaos: a fault-injection and chaos test suite for userspace OOM killers."""
