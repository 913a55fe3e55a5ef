#!/usr/bin/env bash
# Same-run A/B of two builds on PostgreSQL: each round runs the build of
# REVISION ("before", with its own keymeter-bench, which seeds its own
# schema) and this checkout ("after"), in turn and in alternating order,
# each on a fresh database, so both builds meet the same machine and the
# same noise. Prints each scenario's median req/s and p50 over the rounds,
# with their range, and after/before.
#
#   scripts/bench-ab.sh e444e8c --rounds 3 --only "verifyKey credits=1,verifyKey credits=1 (1 conn)"
#
# Other flags go to both keymeter-bench runs (--duration, --only, ...).
# --ceilings keeps pgbench's ceilings (each build's own statements):
#   scripts/bench-ab.sh e444e8c --rounds 2 --ceilings --only none
# REVISION is built once into target/ab/REVISION (a full release build).
set -euo pipefail
cd "$(dirname "$0")/.."

revision=${1:?usage: scripts/bench-ab.sh REVISION [--rounds N] [keymeter-bench flags]}
shift
rounds=3
ceilings=--no-ceilings
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift 2 ;;
        --ceilings) ceilings=""; shift ;;
        *) args+=("$1"); shift ;;
    esac
done

cargo build --release --workspace --quiet
before=target/ab/$(git rev-parse --short "$revision")
if [ ! -x "$before/keymeter-bench" ]; then
    source=$(mktemp -d)
    build=$PWD/target/ab/build
    git worktree add --detach "$source" "$revision" >&2
    (cd "$source" && CARGO_TARGET_DIR="$build" cargo build --release --workspace --quiet)
    mkdir -p "$before"
    cp "$build"/release/{keymeter,keymeter-bench,bare-stack} "$before/"
    git worktree remove --force "$source"
fi

admin=$(scripts/postgres.sh)
export KEYMETER_BENCH_ADMIN_URL=$admin
results=$(mktemp -d)
for round in $(seq "$rounds"); do
    # Odd rounds run before first, even rounds after first: a run's
    # aftermath (checkpoints, vacuum) must not always fall on the same side.
    order="before after"
    if [ $((round % 2)) = 0 ]; then order="after before"; fi
    for side in $order; do
        if [ $side = before ]; then dir=$before; else dir=target/release; fi
        name="keymeter_ab_${side}_${round}_$$"
        psql "$admin" -qXc "CREATE DATABASE $name"
        echo "round $round, $side" >&2
        "$dir/keymeter-bench" --server-bin "$dir/keymeter" --bare-bin "$dir/bare-stack" \
            --database-url "${admin%/*}/$name" \
            $ceilings --json "$results/$side-$round.json" ${args[@]+"${args[@]}"} >/dev/null
        psql "$admin" -qXc "DROP DATABASE IF EXISTS $name WITH (FORCE)"
    done
done

python3 - "$results" <<'EOF'
import json, statistics, sys, pathlib
runs = {"before": {}, "after": {}}
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json")):
    side = path.stem.split("-")[0]
    report = json.loads(path.read_text())
    for s in report["scenarios"] + report.get("ceilings", []):
        runs[side].setdefault(s["name"], []).append((s["rps"], s["p50_ms"]))
print(f"{'scenario or ceiling':44} {'before req/s':>12} {'after req/s':>12} {'ratio':>6} {'before p50':>10} {'after p50':>10}")
for name, before in runs["before"].items():
    after = runs["after"].get(name)
    if not after:
        continue
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    spread = lambda xs: f"{min(x[0] for x in xs):.0f}-{max(x[0] for x in xs):.0f}"
    print(f"{name:44} {med(before, 0):12.0f} {med(after, 0):12.0f} {med(after, 0) / med(before, 0):6.2f} "
          f"{med(before, 1):9.2f}ms {med(after, 1):9.2f}ms   (before {spread(before)}, after {spread(after)})")
EOF
rm -rf "$results"
