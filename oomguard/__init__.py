"""oomguard: a guarded userspace OOM killer.

Standalone on purpose (imports nothing from ``chaos``) so a fleet can deploy it
without the test suite. See docs/oomguard.md for the config format and log schema.
"""

__version__ = "0.1.0"
