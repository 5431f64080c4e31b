#!/usr/bin/env bash
# What the test suite needs beyond the Python packages, in one place (called by `make test`, hence by .ci/run):
# Chromium, because tests/test_report.py and the compare page's test render their HTML in real headless Chromium.
# Installed through the system package manager when it is missing and we may (root, or passwordless sudo, with
# apt-get); otherwise one line says what to install, before any test runs.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null 2>&1; then
  can=1
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif sudo -n true 2>/dev/null; then SUDO=(sudo -n); else can=0; fi
  if [ "$can" -eq 1 ]; then
    echo "make test: installing Chromium (needed by the report tests) with apt-get ..." >&2
    "${SUDO[@]}" apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq chromium >/dev/null
    command -v chromium >/dev/null 2>&1 && exit 0
  fi
fi
echo "error: make test needs Chromium (tests render report.html in it) and cannot install it here:" \
     "install the 'chromium' package (e.g. sudo apt-get install chromium) so that 'chromium' is on PATH, then rerun" >&2
exit 2
