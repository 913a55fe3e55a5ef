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

# A test that cannot run here (no PostgreSQL, browser, gateway or OpenID
# provider) returns early, which cargo shows as passed: each one writes why
# to this file, and the run ends by saying what was skipped.
skipped=$(mktemp)
trap 'rm -f "$skipped"' EXIT
export KEYMETER_SKIPPED=$skipped
status=0
cargo test --workspace "$@" || status=$?
if [ -s "$skipped" ]; then
    echo "test.sh: SKIPPED $(wc -l <"$skipped") tests (shown as passed, but they returned early), by reason:" >&2
    cut -f2 "$skipped" | sort | uniq -c | sed 's/^/  /' >&2
    echo "test.sh: the skipped tests:" >&2
    cut -f1 "$skipped" | sort | sed 's/^/  /' >&2
else
    echo "test.sh: no test was skipped" >&2
fi
exit $status
