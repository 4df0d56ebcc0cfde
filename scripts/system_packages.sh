#!/usr/bin/env bash
# Debian packages some tests drive, installed when missing and this user may install them (root):
# headless Chromium and its driver (the gallery and review pages) and exiftool (reading exported
# XMP sidecars back). Never fails the caller: without one, the tests that need it are skipped and
# say why.
set -uo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v exiftool >/dev/null 2>&1 || missing+=(libimage-exiftool-perl)
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's ${missing[*]} for the tests that use them ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") \
    >/dev/null 2>&1 || echo "could not install ${missing[*]}: the tests that need them will be skipped" >&2
fi
exit 0
