#!/usr/bin/env bash
# bench/load.sh — load test of the webhook against a do-nothing baseline.
#
# What it does:
#   1. Builds (release) the real binary and the examples `baseline`,
#      `gen_policy` and `rate_client` (skip with --no-build).
#   2. In a temporary directory: a localhost certificate (written by the
#      baseline with certs::write_set), a generated policy of --rules rules
#      (default 100, from benches/support/mod.rs), and the review body:
#      tests/fixtures/create-generate-name.json re-serialized compactly with a
#      trailing newline (~5.8 KB; 3 containers + 1 init container, as
#      kube-apiserver sends it), which the policy patches (3 secrets).
#   3. Starts both servers on 127.0.0.1, each pinned to core $SERVER_CPU
#      (default 0) with TOKIO_WORKER_THREADS=1 (tokio's multi-thread builder
#      honours it; the script checks the worker thread count):
#        real:     pull-secret-injector serve --policy-file … --tls-cert …
#                  --tls-key … --listen … --metrics-listen …
#                  (logging at its default, info, to a file: one line per review)
#        baseline: examples/baseline.rs — same TLS stack, /mutate parses the
#                  body into a serde_json::Value and returns a fixed answer.
#   4. Drives them alternately from core $CLIENT_CPU (default 1), kept-alive
#      HTTP/1.1 over TLS (certificate checked against the CA), POST
#      /mutate?timeout=10s with Content-Type: application/json:
#        rateR        oha at R reviews/s (default 1000 and 5000), 8
#                     connections, --latency-correction (latency from when
#                     the request was due), for --duration seconds;
#        rateR-raw    the same without correction (from the actual send);
#        preciseR     examples/rate_client.rs at R/s, 8 connections: an
#                     open-loop client that releases each request within
#                     microseconds of its due time (oha's timer fires in 1 ms
#                     steps); reports latency from the due time, from the
#                     send, and its own lag;
#        max          oha flat out, --connections (default 32) connections,
#                     for --max-duration seconds.
#   The reference is chosen with --reference (default floor):
#        floor:    examples/floor.rs — same TLS stack and router, /mutate
#                  only borrows request.uid from the body and answers the
#                  fixed patch: the least any webhook on this stack pays.
#                  Targets: real/floor max throughput >= 0.85, p99 at
#                  5,000/s <= 1.25x the floor's, RSS <= 16 MB.
#        baseline: the serde_json::Value webhook above (target >= 1.6x).
#   With --rounds N (N > 1) the precise and max steps are repeated N times,
#   the server that goes first alternating from round to round, and the
#   targets are judged on the median of the per-round ratios: on a VM whose
#   speed drifts by tens of percent, one side-by-side pair can land on
#   either side of a target. The oha rate steps run in the first round only.
#   5. Prints one table: throughput, p50/p99/p99.9, the real server's handler
#      time (from its /metrics histogram), the server's CPU use and CPU time
#      per review, CPU stolen from each core by the hypervisor (steal), the
#      server's RSS (the step's peak and the lifetime peak, VmHWM: the
#      kernel's own high-water mark, reset before each step through
#      /proc/PID/clear_refs — polling VmRSS instead would spawn processes
#      on the measured core and slow the server it measures, unevenly:
#      the webhook lost 13% and the floor 8% in one test), and the real/baseline
#      ratios at maximum, with the issue's targets marked.
#
# Usage:
#   bench/load.sh [--quick] [--rules N] [--duration S] [--max-duration S]
#                 [--rates "1000 5000"] [--connections C] [--out DIR]
#                 [--idle-wait S] [--no-build] [--keep] [--reference floor|baseline]
#                 [--rounds N]
#   A full run takes about 6 minutes after the build. For the targets:
#   bench/load.sh --rates 5000 --rounds 7 (about 12 minutes).
#   --quick   smoke run: 3 s per step, no warm-up (about a minute and a half).
#   --out     where the client outputs and the table go
#             (default $CARGO_TARGET_DIR/load-results/<UTC time>).
#   --keep    keep the temporary directory (certificates, policy, logs).
#   --idle-wait  before each step, wait up to S seconds (default 120) for
#             both cores to be idle (< 10% busy), e.g. for a build to finish.
# Environment: CARGO_TARGET_DIR (default <repo>/target), SERVER_CPU,
#   CLIENT_CPU, OHA (default oha; `cargo install oha --locked`), RUST_LOG
#   (passed to the real server, default info).
#
# Needs: bash, cargo, oha, taskset, python3, Linux /proc. Loopback only.
# The numbers are only meaningful on an otherwise idle machine: the table's
# "other%" column is the CPU time on the server core not used by the server
# (other processes; also softirq work not charged to it), flagged above 5%;
# "steal%" is time the hypervisor gave the cores to someone else, during
# which nothing here runs at all.

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
OHA="${OHA:-oha}"
SERVER_CPU="${SERVER_CPU:-0}"
CLIENT_CPU="${CLIENT_CPU:-1}"

RULES=100
DURATION=15
MAX_DURATION=10
RATES="1000 5000"
RATE_CONNECTIONS=8
CONNECTIONS=32
WARMUP=3
IDLE_WAIT=120
BUILD=1
KEEP=0
OUT=""
REFERENCE=floor
ROUNDS=1

while [[ $# -gt 0 ]]; do
    case "$1" in
    --quick) DURATION=3 MAX_DURATION=3 WARMUP=0 IDLE_WAIT=10 ;;
    --idle-wait) IDLE_WAIT="$2"; shift ;;
    --rules) RULES="$2"; shift ;;
    --duration) DURATION="$2"; shift ;;
    --max-duration) MAX_DURATION="$2"; shift ;;
    --rates) RATES="$2"; shift ;;
    --connections) CONNECTIONS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --keep) KEEP=1 ;;
    --reference) REFERENCE="$2"; shift ;;
    --rounds) ROUNDS="$2"; shift ;;
    -h | --help) sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ ]]; then
    echo "--rounds is a positive whole number, not $ROUNDS" >&2
    exit 2
fi

for tool in "$OHA" taskset python3; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool" >&2; exit 1; }
done
if [[ "$(nproc --all)" -lt 2 ]]; then
    echo "warning: fewer than 2 CPUs; server and client will share a core" >&2
fi

if [[ $BUILD -eq 1 ]]; then
    echo "== building (release) into $TARGET" >&2
    (cd "$REPO" && CARGO_TARGET_DIR="$TARGET" cargo build --release --quiet \
        --bin pull-secret-injector --example baseline --example floor --example gen_policy --example rate_client)
fi
BIN="$TARGET/release/pull-secret-injector"
case "$REFERENCE" in
floor | baseline) BASELINE="$TARGET/release/examples/$REFERENCE" ;;
*) echo "--reference is floor or baseline, not $REFERENCE" >&2; exit 2 ;;
esac
GEN="$TARGET/release/examples/gen_policy"
RATE_CLIENT="$TARGET/release/examples/rate_client"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/psi-load.XXXXXX")"
OUT="${OUT:-$TARGET/load-results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        # The real server serves a shutdown grace period first; do not wait.
        wait "$pid" 2>/dev/null || true
    done
    if [[ $KEEP -eq 0 ]]; then rm -rf "$WORK"; else echo "kept $WORK" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until something accepts connections on 127.0.0.1:$1 (30 s at most).
wait_port() {
    local i
    for ((i = 0; i < 300; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1 after 30 s" >&2
    return 1
}

# The review body: compact JSON and a newline, as kube-apiserver sends it.
python3 - "$REPO/tests/fixtures/create-generate-name.json" "$WORK/body.json" <<'EOF'
import json, sys
review = json.load(open(sys.argv[1]))
open(sys.argv[2], "w").write(json.dumps(review, separators=(",", ":")) + "\n")
EOF
"$GEN" --rules "$RULES" >"$WORK/policy.yaml"

BASE_PORT="$(free_port)"
REAL_PORT="$(free_port)"
METRICS_PORT="$(free_port)"
CERTS="$WORK/certs"

echo "== starting servers on core $SERVER_CPU ($REFERENCE :$BASE_PORT, real :$REAL_PORT)" >&2
# The baseline writes the localhost certificate set both servers use.
TOKIO_WORKER_THREADS=1 taskset -c "$SERVER_CPU" "$BASELINE" \
    --listen "127.0.0.1:$BASE_PORT" --tls-cert "$CERTS/tls.crt" --tls-key "$CERTS/tls.key" \
    >"$WORK/baseline.log" 2>&1 &
BASE_PID=$!
PIDS+=("$BASE_PID")
wait_port "$BASE_PORT"

TOKIO_WORKER_THREADS=1 taskset -c "$SERVER_CPU" "$BIN" serve \
    --policy-file "$WORK/policy.yaml" --tls-cert "$CERTS/tls.crt" --tls-key "$CERTS/tls.key" \
    --listen "127.0.0.1:$REAL_PORT" --metrics-listen "127.0.0.1:$METRICS_PORT" \
    >"$WORK/real.log" 2>&1 &
REAL_PID=$!
PIDS+=("$REAL_PID")
wait_port "$REAL_PORT"

# One request each, checked: the real server must patch, both must echo the uid.
python3 - "$WORK/body.json" "$CERTS/ca.crt" "$REAL_PORT" "$BASE_PORT" "$REFERENCE" <<'EOF'
import http.client, json, ssl, sys
body = open(sys.argv[1], "rb").read()
uid = json.loads(body)["request"]["uid"]
ctx = ssl.create_default_context(cafile=sys.argv[2])
for name, port, want_patch in (("real", sys.argv[3], True), (sys.argv[5], sys.argv[4], sys.argv[5] == "floor")):
    conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx, timeout=10)
    conn.request("POST", "/mutate?timeout=10s", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    answer = json.loads(resp.read())
    assert resp.status == 200, (name, resp.status, answer)
    assert answer["response"]["uid"] == uid, (name, answer)
    assert ("patch" in answer["response"]) == want_patch, (name, answer)
EOF

# Tokio workers that did the serving: tokio names the threads of its
# blocking pool like its workers, and the real server keeps one of those for
# reading the policy file, which barely runs; so a thread counts as a worker
# when it did at least a fifth of the CPU work of the process's tokio
# threads. Meaningful after load (the warm-up).
busy_workers() {
    local task
    for task in /proc/"$1"/task/*; do
        [[ "$(cat "$task/comm" 2>/dev/null)" == tokio-rt-worker ]] || continue
        awk '{print $14 + $15}' "$task/stat" 2>/dev/null
    done | awk '{t[NR] = $1; s += $1} END {n = 0; for (i in t) if (s > 0 && 5 * t[i] >= s) n++; print n}'
}

CLK_TCK="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
core_ticks() { awk -v c="cpu$1" '$1 == c {print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; }
steal_ticks() { awk -v c="cpu$1" '$1 == c {print $9}' /proc/stat; }

# Waits (at most $IDLE_WAIT s) until both cores are nearly idle for 2 s, so
# that a build running elsewhere does not skew a step; goes on with a
# warning otherwise (the table's other% column then shows the interference).
wait_idle() {
    local start=$SECONDS a0 a1 b0 b1 busy
    while ((SECONDS - start < IDLE_WAIT)); do
        a0="$(core_ticks "$SERVER_CPU")" b0="$(core_ticks "$CLIENT_CPU")"
        sleep 2
        a1="$(core_ticks "$SERVER_CPU")" b1="$(core_ticks "$CLIENT_CPU")"
        busy="$(echo "$a0 $a1 $b0 $b1" | awk '{
            sa = ($3 - $1) - ($4 - $2); ta = $3 - $1; sb = ($7 - $5) - ($8 - $6); tb = $7 - $5
            print int(100 * (sa > sb ? sa / (ta ? ta : 1) : sb / (tb ? tb : 1)))}')"
        if ((busy < 10)); then return 0; fi
        echo "   waiting for idle cores (busiest at ${busy}%)" >&2
    done
    echo "warning: cores still busy after ${IDLE_WAIT}s; measuring anyway" >&2
}

# The real server's /metrics (its review-duration histogram gives the time
# spent in the handler, without TLS, HTTP and queueing).
scrape() {
    python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
        "http://127.0.0.1:$METRICS_PORT/metrics" >"$1" || true
}

# The server's peak RSS since the last reset_peak (VmHWM), in kB.
peak_rss() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# Restarts the kernel's peak-RSS count of process $1 from its current RSS
# ("5" in clear_refs, Linux 4.0+); the lifetime peak is kept separately.
reset_peak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || true; }
declare -A LIFETIME_PEAK=()

# measure NAME PID STEP CLIENT-COMMAND... — runs one client (its stdout goes
# to $OUT/NAME-STEP.json) with the server's CPU time, the server core's busy
# time, both cores' steal time and the step's peak RSS recorded next to it.
# Nothing runs on the side while the client does.
measure() {
    local name="$1" pid="$2" step="$3"
    shift 3
    local file="$OUT/$name-$step"
    local cpu0 core0 steal0 steal1 before
    [[ $name == real ]] && scrape "$file.metrics0"
    before="$(peak_rss "$pid")"
    if ((before > ${LIFETIME_PEAK[$pid]:-0})); then LIFETIME_PEAK[$pid]=$before; fi
    reset_peak "$pid"
    cpu0="$(cpu_ticks "$pid")"
    core0="$(core_ticks "$SERVER_CPU")"
    steal0="$(steal_ticks "$SERVER_CPU") $(steal_ticks "$CLIENT_CPU")"
    local limit=$(( ${DURATION%s} > ${MAX_DURATION%s} ? ${DURATION%s} : ${MAX_DURATION%s} ))
    local t0 t1
    t0="$(date +%s.%N)"
    timeout $((limit + 60)) taskset -c "$CLIENT_CPU" "$@" >"$file.json"
    t1="$(date +%s.%N)"
    local cpu1 core1
    cpu1="$(cpu_ticks "$pid")"
    core1="$(core_ticks "$SERVER_CPU")"
    steal1="$(steal_ticks "$SERVER_CPU") $(steal_ticks "$CLIENT_CPU")"
    local peak
    peak="$(peak_rss "$pid")"
    if ((peak > ${LIFETIME_PEAK[$pid]:-0})); then LIFETIME_PEAK[$pid]=$peak; fi
    [[ $name == real ]] && scrape "$file.metrics1"
    printf '{"server":"%s","step":"%s","wall":%s,"cpu_ticks":%d,"core":"%s %s","steal":"%s %s","clk_tck":%d,"rss_peak_kb":%d,"hwm_kb":%d}\n' \
        "$name" "$step" "$(python3 -c "print(round($t1 - $t0, 3))")" \
        $((cpu1 - cpu0)) "$core0" "$core1" "$steal0" "$steal1" "$CLK_TCK" \
        "$peak" "${LIFETIME_PEAK[$pid]}" >"$file.meta"
}

# oha NAME PID PORT STEP OHA-ARGS... — one oha run.
oha_step() {
    local name="$1" pid="$2" port="$3" step="$4"
    shift 4
    measure "$name" "$pid" "$step" "$OHA" --no-tui --output-format json \
        -m POST -H "Content-Type: application/json" -D "$WORK/body.json" \
        --cacert "$CERTS/ca.crt" "$@" "https://127.0.0.1:$port/mutate?timeout=10s"
}

# precise_step NAME PID PORT STEP RATE — one rate_client run.
precise_step() {
    local name="$1" pid="$2" port="$3" step="$4" rate="$5"
    measure "$name" "$pid" "$step" "$RATE_CLIENT" --addr "127.0.0.1:$port" \
        --server-name 127.0.0.1 --cacert "$CERTS/ca.crt" --body "$WORK/body.json" \
        --rate "$rate" --connections "$RATE_CONNECTIONS" --duration "${DURATION%s}" --warmup 1
}

if [[ $WARMUP -gt 0 ]]; then
    echo "== warm-up (${WARMUP}s each)" >&2
    for target in "real $REAL_PID $REAL_PORT" "baseline $BASE_PID $BASE_PORT"; do
        # shellcheck disable=SC2086
        oha_step $target warmup -z "${WARMUP}s" -c "$CONNECTIONS"
    done
    for pid in "$REAL_PID" "$BASE_PID"; do
        workers="$(busy_workers "$pid")"
        if [[ "$workers" -ne 1 ]]; then
            echo "warning: pid $pid served with $workers tokio workers, not 1" >&2
        fi
    done
fi

# A step's name is its kind, and with --rounds its round after a dot
# (precise5000.3); the servers go in the other order in even rounds.
STEPS=()
for ((round = 1; round <= ROUNDS; round++)); do
    suffix=""
    ((ROUNDS > 1)) && suffix=".$round"
    for rate in $RATES; do
        ((round == 1)) && STEPS+=("rate$rate" "rate$rate-raw")
        STEPS+=("precise$rate$suffix")
    done
    STEPS+=("max$suffix")
done
for step in "${STEPS[@]}"; do
    order=("real $REAL_PID $REAL_PORT" "baseline $BASE_PID $BASE_PORT")
    if [[ $step == *.* ]] && (( ${step#*.} % 2 == 0 )); then
        order=("${order[1]}" "${order[0]}")
    fi
    for target in "${order[@]}"; do
        wait_idle
        echo "== $step: ${target%% *}" >&2
        case "${step%.*}" in
        max)
            # shellcheck disable=SC2086
            oha_step $target "$step" -z "${MAX_DURATION}s" -c "$CONNECTIONS" ;;
        precise*)
            rate="${step%.*}"
            # shellcheck disable=SC2086
            precise_step $target "$step" "${rate#precise}" ;;
        *-raw)
            rate="${step#rate}"
            # shellcheck disable=SC2086
            oha_step $target "$step" -z "${DURATION}s" -c "$RATE_CONNECTIONS" -q "${rate%-raw}" ;;
        *)
            # shellcheck disable=SC2086
            oha_step $target "$step" -z "${DURATION}s" -c "$RATE_CONNECTIONS" \
                -q "${step#rate}" --latency-correction ;;
        esac
    done
done

LOG_BYTES="$(wc -c <"$WORK/real.log")"
python3 - "$OUT" "$RULES" "$LOG_BYTES" "$REFERENCE" "${STEPS[@]}" <<'EOF' | tee "$OUT/table.txt"
import json, os, sys

out, rules, log_bytes, reference, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
rows = {}
print(f"pull-secret-injector load test: {rules}-rule policy, {os.cpu_count()} CPUs, "
      f"{open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()}")

def handler_quantiles(prefix):
    """Upper bounds of the handler-time p99 and p99.9 (ms) during a step,
    from the histogram of /metrics scraped before and after it."""
    def buckets(path):
        found = {}
        try:
            for line in open(path):
                if line.startswith("pull_secret_injector_admission_review_duration_seconds_bucket"):
                    le = line.split('le="')[1].split('"')[0]
                    found[float(le)] = found.get(float(le), 0) + float(line.split()[-1])
        except OSError:
            pass
        return found
    b0, b1 = buckets(prefix + ".metrics0"), buckets(prefix + ".metrics1")
    if not b1:
        return None, None
    delta = sorted((le, b1[le] - b0.get(le, 0)) for le in b1)
    total = delta[-1][1]
    pick = lambda q: next((le for le, n in delta if n >= q * total), float("inf")) * 1e3
    return pick(0.99), pick(0.999)

head = ("server", "step", "req/s", "ok%", "p50 ms", "p99 ms", "p99.9 ms", "handler p99/p99.9",
        "cpu%", "cpu µs/req", "other%", "steal% s/c", "RSS peak MB", "VmHWM MB")
fmt = "{:<9} {:<13} {:>7} {:>6} {:>7} {:>7} {:>8} {:>17} {:>5} {:>10} {:>6} {:>10} {:>11} {:>8}"
print(fmt.format(*head))
for step in steps:
    for server in ("real", "baseline"):
        o = json.load(open(f"{out}/{server}-{step}.json"))
        m = json.load(open(f"{out}/{server}-{step}.meta"))
        if step.startswith("precise"):
            # CPU is sampled over the whole client run (connecting, 1 s of
            # warm-up, the measured seconds), so count every request sent.
            ok = o["answered"]
            allreq = ok + o["errors"]
            rps = o["achieved_per_sec"]
            wall = m["wall"]
            lat = o["latency_ms"]
            p = {"p50": lat["p50"] / 1e3, "p99": lat["p99"] / 1e3, "p99.9": lat["p99.9"] / 1e3}
            served = o["rate"] * (o["answered"] / max(rps, 1e-9) + 1)
        else:
            wall = o["summary"]["total"]
            ok = o.get("statusCodeDistribution", {}).get("200", 0)
            allreq = sum(o.get("statusCodeDistribution", {}).values()) + sum(o.get("errorDistribution", {}).values())
            rps = ok / wall
            p = o["latencyPercentiles"]
            served = ok
        cpu_s = m["cpu_ticks"] / m["clk_tck"]
        c0 = [int(x) for x in m["core"].split()]
        busy = ((c0[2] - c0[0]) - (c0[3] - c0[1])) / m["clk_tck"]
        st = [int(x) for x in m["steal"].split()]
        steal = (100 * (st[2] - st[0]) / m["clk_tck"] / wall, 100 * (st[3] - st[1]) / m["clk_tck"] / wall)
        r = dict(rps=rps, p50=p["p50"] * 1e3, p99=p["p99"] * 1e3, p999=p["p99.9"] * 1e3,
                 cpu=100 * cpu_s / wall, us=1e6 * cpu_s / max(served, 1),
                 other=100 * max(busy - cpu_s, 0) / wall, steal=steal,
                 rss=m["rss_peak_kb"] / 1024, hwm=m["hwm_kb"] / 1024,
                 okpct=100 * ok / max(allreq, 1))
        rows[(server, step)] = r
        flag = " !" if r["other"] > 5 else ""
        h99, h999 = handler_quantiles(f"{out}/{server}-{step}")
        handler = f"<{h99:.2f}/<{h999:.2f}" if h99 is not None else "-"
        shown = reference if server == "baseline" else server
        print(f"{shown:<9} {step:<13} {rps:>7.0f} {r['okpct']:>6.1f} {r['p50']:>7.3f} {r['p99']:>7.3f} "
              f"{r['p999']:>8.3f} {handler:>17} {r['cpu']:>5.0f} {r['us']:>10.1f} {r['other']:>5.0f}{flag:<1} "
              f"{steal[0]:>4.1f}/{steal[1]:<4.1f} {r['rss']:>11.1f} {r['hwm']:>8.1f}")
print("(latencies in ms, from the due time except in '-raw' steps (from the actual send); "
      "handler = time in the /mutate handler from the server's histogram, bucket upper bounds; "
      "ok% = HTTP 200 among all requests including those aborted at the deadline; "
      "'!' = more than 5% of the server core went to something else; "
      "steal% s/c = CPU time the hypervisor took from the server/client core)")
for rate in (s[len("precise"):] for s in steps if s.startswith("precise")):
    per_second, _, round_ = rate.partition(".")
    shown_rate = f"{per_second}/s" + (f", round {round_}" if round_ else "")
    print(f"\nprecise client at {shown_rate} (examples/rate_client.rs), p50 / p99 / p99.9 / max in ms:")
    for server in ("real", "baseline"):
        o = json.load(open(f"{out}/{server}-precise{rate}.json"))
        q = lambda k: " / ".join(f"{o[k][x]:.3f}" for x in ("p50", "p99", "p99.9")) + f" / {o[k]['max']:.1f}"
        print(f"  {(reference if server == 'baseline' else server):<9} from due: {q('latency_ms')}   from send: {q('latency_from_send_ms')}"
              f"   client lag: {q('client_lag_ms')}")
def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2

def judged(values):
    """The median of per-round values, and how it was found."""
    if len(values) == 1:
        return values[0], ""
    shown = ", ".join(f"{v:.2f}" for v in values)
    return median(values), f" (median of {len(values)} rounds: {shown})"

max_steps = [s for s in steps if s.split(".")[0] == "max"]
ratios = [rows[("real", s)]["rps"] / rows[("baseline", s)]["rps"] for s in max_steps]
cpu_ratios = [rows[("baseline", s)]["us"] / rows[("real", s)]["us"] for s in max_steps]
ratio, how = judged(ratios)
cpu_ratio, cpu_how = judged(cpu_ratios)
print(f"\nat maximum: real/{reference} throughput = {ratio:.2f}x{how}; "
      f"{reference}/real CPU time per review = {cpu_ratio:.2f}x{cpu_how}")
served = sum(json.load(open(f"{out}/{f}")).get("statusCodeDistribution", {}).get("200", 0)
             for f in os.listdir(out) if f.startswith("real-") and f.endswith(".json") and "precise" not in f)
print(f"real server log: {log_bytes / 1e6:.1f} MB for {served}+ reviews ({log_bytes / max(served, 1):.0f} B each at most)")
if reference == "floor":
    checks = [("max throughput >= 0.85x the floor", ratio >= 0.85, f"{ratio:.2f}x{how}")]
    p5000 = [s for s in steps if s.split(".")[0] == "precise5000"]
    for key, what in (("latency_ms", "from the due time"), ("latency_from_send_ms", "from the send")):
        if not p5000:
            break
        pairs = []
        for s in p5000:
            o = json.load(open(f"{out}/real-{s}.json"))
            f = json.load(open(f"{out}/baseline-{s}.json"))
            pairs.append((o[key]["p99"], f[key]["p99"]))
        p99_ratio, p99_how = judged([r / max(f, 1e-9) for r, f in pairs])
        r99, f99 = median([r for r, _ in pairs]), median([f for _, f in pairs])
        checks.append((f"p99 at 5,000/s <= 1.25x the floor's (precise client, {what})",
                       p99_ratio <= 1.25,
                       f"{p99_ratio:.2f}x{p99_how}; median p99 {r99:.3f} ms vs {f99:.3f} ms"))
else:
    checks = [("max throughput >= 1.6x baseline", ratio >= 1.6, f"{ratio:.2f}x{how}")]
    p5000 = [s for s in steps if s.split(".")[0] == "precise5000"]
    if p5000:
        due = median([json.load(open(f"{out}/real-{s}.json"))["latency_ms"]["p99"] for s in p5000])
        sent = median([json.load(open(f"{out}/real-{s}.json"))["latency_from_send_ms"]["p99"] for s in p5000])
        checks.append(("p99 <= 0.6 ms at 5,000/s (precise client, from the due time)", due <= 0.6,
                       f"{due:.3f} ms"))
        checks.append(("p99 <= 0.6 ms at 5,000/s (precise client, from the send)", sent <= 0.6,
                       f"{sent:.3f} ms"))
    if ("real", "rate5000") in rows:
        p99 = rows[("real", "rate5000")]["p99"]
        raw = rows[("real", "rate5000-raw")]["p99"]
        checks.append(("p99 <= 0.6 ms at 5,000/s (oha)", p99 <= 0.6,
                       f"{p99:.3f} ms corrected, {raw:.3f} ms from the actual send"))
hwm = max(r["hwm"] for (s, _), r in rows.items() if s == "real")
checks.append(("RSS <= 16 MB under load (VmHWM)", hwm <= 16, f"{hwm:.1f} MB"))
for name, ok, value in checks:
    print(f"  [{'PASS' if ok else 'MISS'}] {name}: {value}")
EOF
echo "results in $OUT" >&2
