#!/usr/bin/env bash
# Makes tests/fixtures/release-REV/: a database made and used by keymeter at
# revision REV (an SQLite file and a PostgreSQL dump) and what its API
# answered (manifest.json), for tests/api/upgrade.rs. Builds REV in a
# temporary worktree (its target directory under target/, reused next time),
# unless KEYMETER_FIXTURE_BINARY names that revision's binary already built.
# Needs PostgreSQL (scripts/postgres.sh starts it).
#
#   scripts/upgrade-fixture.sh a2023be
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: scripts/upgrade-fixture.sh REV}
binary=${KEYMETER_FIXTURE_BINARY:-}
if [ -z "$binary" ]; then
    tree=$(mktemp -d)
    trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || true' EXIT
    git worktree add --detach "$tree" "$rev" >/dev/null
    target="$PWD/target/release-$rev"
    (cd "$tree" && CARGO_TARGET_DIR="$target" cargo build --quiet --bin keymeter)
    binary="$target/debug/keymeter"
fi
admin=$(scripts/postgres.sh)
python3 scripts/upgrade-fixture.py "$binary" "tests/fixtures/release-$rev" "$admin"
echo "tests/fixtures/release-$rev: $(ls "tests/fixtures/release-$rev" | tr '\n' ' ')"
