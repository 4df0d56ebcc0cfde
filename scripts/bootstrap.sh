#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment in .venv.
# Idempotent: does nothing when requirements.txt has not changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
stamp="$venv/.requirements.sha256"
want="$(cat "$root/requirements.txt" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)"

python="${FACECLUSTER_PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "facecluster needs Python 3.11 (found $("$python" --version 2>&1))" >&2; exit 1; }
command -v java >/dev/null 2>&1 || { echo "facecluster needs Java 17 on PATH for Spark" >&2; exit 1; }

if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
# torch's CUDA build and its libraries take about 7 GB in the venv (measured: 7.1 GB), and pip unpacks
# wheels under TMPDIR on the way: stop with the reason rather than half-installed.
need_gb=8
for dir in "$root" "${TMPDIR:-/tmp}"; do
  free_gb=$(( $(df -Pk "$dir" | awk 'NR==2 {print $4}') / 1048576 ))
  if (( free_gb < need_gb )); then
    echo "facecluster's setup needs about $need_gb GB free under $dir; it has $free_gb GB." >&2
    exit 1
  fi
done
echo "Setting up $venv (first run takes a few minutes) ..." >&2
[[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --no-cache-dir --upgrade pip
"$venv/bin/python" -m pip install --quiet --no-cache-dir -r "$root/requirements.txt"
"$venv/bin/python" -m pip install --quiet --no-cache-dir -e "$root"
echo "$want" > "$stamp"
