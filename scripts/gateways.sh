#!/usr/bin/env bash
# Installs Debian's nginx and Caddy, which the gateway tests (tests/api/support/gateways.rs)
# run in front of keymeter with deploy/nginx.conf and deploy/Caddyfile, when they
# are missing. As root only: elsewhere it says what to install. The tests skip
# without them, except with CI=true.
set -euo pipefail
# Debian puts nginx in /usr/sbin, which a user's PATH often leaves out.
PATH=$PATH:/usr/sbin
if command -v nginx >/dev/null && command -v caddy >/dev/null; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "gateways.sh: install the Debian packages nginx and caddy to run the gateway tests" >&2
    exit 1
fi
# Both packages start a system service on port 80 when installed. The tests
# start their own, on random ports, and need none; and where port 80 is taken
# nginx's start fails and leaves the package half-configured. So, unless the
# machine already has a policy (Docker images ship one that refuses every
# start), one refuses service starts for the length of the install.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# gateways.sh: no service starts during its install\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq nginx caddy >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq nginx caddy >/dev/null; }
command -v nginx >/dev/null && command -v caddy >/dev/null
