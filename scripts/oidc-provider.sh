#!/usr/bin/env bash
# Installs oidc-provider-mock (PyPI), the OpenID Connect provider the sign-in
# tests run against, when it is missing; then says how to start it by hand.
# The tests start their own (tests/api/support/oidc.rs); with CI=true a missing one
# fails them instead of skipping.
set -euo pipefail
python=${PYTHON:-python3}
if ! "$python" -c 'import oidc_provider_mock' 2>/dev/null; then
    "$python" -m pip install --quiet 'oidc-provider-mock>=0.3,<0.4' >&2
fi
echo "oidc-provider-mock installed; start one with: $python -m oidc_provider_mock --port 9400" >&2
