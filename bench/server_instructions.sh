#!/usr/bin/env bash
# bench/server_instructions.sh — instructions per review of the whole server
# (TLS, HTTP, router, handler, logging, metrics), the webhook next to the
# floor (examples/floor.rs), under valgrind's callgrind.
#
# Wall-clock load tests on a shared machine move by tens of percent; the
# instructions a server executes per review do not. Each server runs under
# callgrind with one tokio worker while examples/rate_client.rs posts the
# load test's review (kept-alive HTTP/1.1 over TLS, 8 connections) N and
# then 2N times; (I(2N) - I(N)) / N is the cost of one review with start-up,
# the policy compile and the connections' handshakes taken out. The ratio
# floor/webhook approximates webhook/floor maximum throughput on one core
# (system calls and cache misses aside).
#
# Usage: bench/server_instructions.sh [--no-build] [--rules N] [--requests N]
# Needs: valgrind, python3. Takes a few minutes.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
BUILD=1
RULES=100
REQUESTS=600
while [[ $# -gt 0 ]]; do
    case "$1" in
    --no-build) BUILD=0 ;;
    --rules) RULES="$2"; shift ;;
    --requests) REQUESTS="$2"; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
command -v valgrind >/dev/null || { echo "missing tool: valgrind" >&2; exit 1; }
if [[ $BUILD -eq 1 ]]; then
    (cd "$REPO" && CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet \
        --bin pull-secret-injector --example floor --example gen_policy --example rate_client)
fi
BIN="$TARGET/release/pull-secret-injector"
FLOOR="$TARGET/release/examples/floor"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/psi-sinstr.XXXXXX")"
SERVER_PID=""
cleanup() {
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

python3 - "$REPO/tests/fixtures/create-generate-name.json" "$WORK/body.json" <<'PY'
import json, sys
review = json.load(open(sys.argv[1]))
open(sys.argv[2], "w").write(json.dumps(review, separators=(",", ":")) + "\n")
PY
"$TARGET/release/examples/gen_policy" --rules "$RULES" >"$WORK/policy.yaml"
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
# The floor writes the certificate set on its first start.

wait_port() {
    local i
    for ((i = 0; i < 1200; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$PORT" >&2
    return 1
}

# run NAME REQUESTS — total instructions of the server for REQUESTS reviews.
run() {
    local name="$1" n="$2" rate=200
    local cmd=("$FLOOR" --listen "127.0.0.1:$PORT" --tls-cert "$WORK/certs/tls.crt" --tls-key "$WORK/certs/tls.key")
    if [[ $name == webhook ]]; then
        cmd=("$BIN" serve --policy-file "$WORK/policy.yaml" --tls-cert "$WORK/certs/tls.crt"
            --tls-key "$WORK/certs/tls.key" --listen "127.0.0.1:$PORT" --metrics-listen 127.0.0.1:0
            --shutdown-grace 0s)
    fi
    TOKIO_WORKER_THREADS=1 valgrind --tool=callgrind --callgrind-out-file="$WORK/$name.%p.out" \
        "${cmd[@]}" >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    wait_port
    "$TARGET/release/examples/rate_client" --addr "127.0.0.1:$PORT" --server-name 127.0.0.1 \
        --cacert "$WORK/certs/ca.crt" --body "$WORK/body.json" --rate "$rate" \
        --connections 8 --duration $((n / rate)) --warmup 0 >"$WORK/client.json"
    python3 -c 'import json,sys; o=json.load(open(sys.argv[1])); assert o["errors"] == 0, o' "$WORK/client.json"
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=""
    cat "$WORK"/"$name".*.out | awk '/^summary:/ {s += $2} END {print s}'
    rm -f "$WORK"/"$name".*.out
}

declare -A PER
for name in floor webhook; do
    one="$(run "$name" "$REQUESTS")"
    two="$(run "$name" $((2 * REQUESTS)))"
    PER[$name]=$(((two - one) / REQUESTS))
    printf '%-8s %12d instructions per review\n' "$name" "${PER[$name]}"
done
python3 -c "import sys; f, w = int(sys.argv[1]), int(sys.argv[2]); print(f'webhook/floor instructions = {w / f:.3f}; floor/webhook (approx. throughput ratio) = {f / w:.3f}')" \
    "${PER[floor]}" "${PER[webhook]}"
