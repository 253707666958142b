"""Test-wide settings: an isolated Prefect home (ephemeral API, its own SQLite file),
generous start-up timeouts for a loaded 2-core machine, and no telemetry."""

from __future__ import annotations

import os
import tempfile

_HOME = tempfile.mkdtemp(prefix="personamath-prefect-")
os.environ.setdefault("PREFECT_HOME", _HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# Never talk to a server configured in the developer's shell: tests that need a real
# server start their own (tests/integration/test_prefect_server.py).
os.environ.pop("PREFECT_API_URL", None)
