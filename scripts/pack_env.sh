#!/usr/bin/env bash
# Packs a Python environment for Spark's executors: a fresh virtualenv with facecluster (and
# everything it needs) installed from this checkout, packed with venv-pack. Ship it with
#   spark-submit --archives ENV.tar.gz#env --conf spark.pyspark.python=./env/bin/python jobs/embed.py ...
# Usage: scripts/pack_env.sh OUT.tar.gz
# Only .tar.gz: Spark unpacks it with the system's tar, which keeps the interpreter executable; a
# plain .tar is unpacked by Spark's own Java code, which drops the execute bits (error=13 on the
# executors), and a .zip needs a Spark that restores them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$(realpath -m "${1:?usage: scripts/pack_env.sh OUT.tar.gz}")"
case "$out" in
  *.tar.gz) ;;
  *) echo "scripts/pack_env.sh: $out must end in .tar.gz (Spark unpacks other archives without execute bits)" >&2; exit 2 ;;
esac
python="${FACECLUSTER_PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
work="$(mktemp -d "${TMPDIR:-/tmp}/facecluster-env.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# --copies: the interpreter itself, not a link to it (Spark refuses to unpack a link that points
# outside the archive); its standard library is the one at the same path on every node.
"$python" -m venv --copies "$work/env"
"$work/env/bin/python" -m pip install --quiet --no-cache-dir --upgrade pip
# Not editable: an executor has no checkout to point at.
"$work/env/bin/python" -m pip install --quiet --no-cache-dir -r "$root/requirements.txt" "$root" venv-pack
"$work/env/bin/python" -m pip check
rm -f "$out"
"$work/env/bin/venv-pack" --prefix "$work/env" --output "$out" --compress-level 1 --quiet
echo "packed $(du -h "$out" | cut -f1) into $out"
