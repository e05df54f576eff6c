"""Only loads the chaos pytest plugin (also registered as a pytest11 entry point)."""

pytest_plugins = ["chaos.plugin"]
