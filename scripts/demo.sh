#!/usr/bin/env bash
# Sets everything up if needed, then runs the whole job on the sample archive in Spark local mode.
# Extra arguments go to `facecluster run`, e.g.: scripts/demo.sh --embedder dlib
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
exec "$root/.venv/bin/facecluster" run samples/archive --out runs/sample "$@"
