#!/usr/bin/env bash
# Sets everything up if needed, then runs the test suite. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
"$root/scripts/system_packages.sh"
cd "$root"
# The ten slowest tests close every run, so that CI's time budget stays in view.
exec "$root/.venv/bin/python" -m pytest --durations=10 "$@"
