#!/usr/bin/env bash
# The project's test command (README, second command; .ci/run runs exactly this).
# Installs what the tests need (pip extras, Ceph from Debian), starts the real S3
# server, runs the whole suite, and stops the server again.
#   bash scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
python3 -m pip install -q -c .ci/constraints.txt -e ".[local,dev,train]"
bash scripts/install-ceph.sh
# The S3 tests start their own private Ceph cluster through scripts/s3-server.sh
# (tests/integration/s3_server.py) and stop it at the end of the session.
# In this script every part is installed, so a missing one is a failure, not a skip.
export PERSONAMATH_REQUIRE_S3=1 PERSONAMATH_REQUIRE_TRAIN=1 PERSONAMATH_REQUIRE_LOCAL_MODEL=1 \
    PERSONAMATH_REQUIRE_COMPOSE=1
ruff check .
python3 -m pytest -q -ra --durations=15 "$@"
