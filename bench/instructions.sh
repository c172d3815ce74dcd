#!/usr/bin/env bash
# bench/instructions.sh — instruction counts of the core, per operation.
#
# Wall-clock benchmarks on a shared machine move by tens of percent from
# one minute to the next; instruction counts (valgrind's callgrind) do not.
# This runs examples/core_ops.rs under callgrind twice per case, with N and
# 2N iterations, and prints (I(2N) - I(N)) / N: the instructions of one
# operation, without the setup (policy generation, compile, fixture).
#
# Cases: one review (decode → decide → encode) against policies of 10, 100,
# 1,000 and 10,000 rules (both generator shapes), the floor's handler work
# (examples/floor.rs: borrow the uid, write a fixed answer), and compiling a
# 10,000-rule policy from text.
#
# Usage: bench/instructions.sh [--no-build]
# Needs: valgrind. Takes a few minutes.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
command -v valgrind >/dev/null || { echo "missing tool: valgrind" >&2; exit 1; }
if [[ "${1:-}" != --no-build ]]; then
    (cd "$REPO" && CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet --example core_ops)
fi
BIN="$TARGET/release/examples/core_ops"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/psi-instr.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# instructions ARGS... — total instructions of one run.
instructions() {
    valgrind --tool=callgrind --callgrind-out-file="$WORK/out" "$BIN" "$@" 2>"$WORK/log" >/dev/null
    awk '/^summary:/ {print $2}' "$WORK/out"
}

# per_op N ARGS... — instructions of one iteration.
per_op() {
    local n="$1"
    shift
    local one two
    one="$(instructions "$@" --iterations "$n")"
    two="$(instructions "$@" --iterations $((2 * n)))"
    echo $(((two - one) / n))
}

printf '%-34s %14s\n' "operation" "instructions"
for shape in "" "--shared-hosts"; do
    base=""
    for rules in 10 100 1000 10000; do
        n="$(per_op 200 --op review --rules "$rules" $shape)"
        [[ -z $base ]] && base="$n"
        ratio="$(python3 -c "print(f'{$n / $base:.3f}')")"
        printf '%-34s %14d   (%sx the 10-rule policy)\n' \
            "review, $rules rules${shape:+ (shared hosts)}" "$n" "$ratio"
    done
done
floor="$(per_op 200 --op floor)"
review="$(per_op 200 --op review --rules 100)"
printf '%-34s %14d   (the review, 100 rules, is %sx this)\n' "floor handler (borrow uid, fixed answer)" "$floor" \
    "$(python3 -c "print(f'{$review / $floor:.2f}')")"
for shape in "" "--shared-hosts"; do
    n="$(per_op 1 --op compile --rules 10000 $shape)"
    printf '%-34s %14d\n' "compile 10000 rules${shape:+ (shared hosts)}" "$n"
done
