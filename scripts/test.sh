#!/usr/bin/env bash
# Runs keymeter's whole test suite: on SQLite always, and on PostgreSQL when
# one can be reached or started (see scripts/postgres.sh). With CI=true an
# unreachable PostgreSQL fails the run instead of skipping those tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${KEYMETER_TEST_DATABASE_URL:-}" ]; then
    if url=$(scripts/postgres.sh); then
        export KEYMETER_TEST_DATABASE_URL=$url
    elif [ "${CI:-}" = "true" ]; then
        echo "test.sh: PostgreSQL is required in CI and could not be reached" >&2
        exit 1
    else
        echo "test.sh: no PostgreSQL; its tests will be skipped" >&2
    fi
fi

# The sign-in tests run against a real OpenID provider they start themselves.
if ! scripts/oidc-provider.sh && [ "${CI:-}" = "true" ]; then
    echo "test.sh: oidc-provider-mock is required in CI and could not be installed" >&2
    exit 1
fi

# The dashboard tests drive a real Chromium through ChromeDriver.
if ! scripts/browser.sh && [ "${CI:-}" = "true" ]; then
    echo "test.sh: chromium and chromium-driver are required in CI and could not be installed" >&2
    exit 1
fi

# The gateway tests run real nginx and Caddy in front of keymeter.
if ! scripts/gateways.sh && [ "${CI:-}" = "true" ]; then
    echo "test.sh: nginx and caddy are required in CI and could not be installed" >&2
    exit 1
fi

cargo test --workspace "$@"
