#!/usr/bin/env bash
# Headless Chromium for the gallery-page test, from Debian's packages when it is missing and
# this user may install them (root). Never fails the caller: without it that one test is skipped
# and says why.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's chromium for the gallery-page test ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium) \
    >/dev/null 2>&1 || echo "could not install chromium: the gallery-page test will be skipped" >&2
fi
exit 0
