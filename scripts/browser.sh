#!/usr/bin/env bash
# Installs Debian's Chromium and its ChromeDriver, which the browser tests
# (tests/browser) drive, when they are missing. As root only: elsewhere it
# says what to install. The tests skip without them, except with CI=true.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "browser.sh: install the Debian packages chromium and chromium-driver to run the browser tests" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
command -v chromium >/dev/null && command -v chromedriver >/dev/null
