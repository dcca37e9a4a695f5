"""The orchestrator tests use the shared fixtures of tests/conftest.py (tiny_spec, workdir, write_spec)."""
