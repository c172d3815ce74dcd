#!/usr/bin/env bash
# bench/audit.sh — `audit` over a large fake cluster: time and peak memory.
#
# What it does:
#   1. Builds (release) the binary and examples/audit_cluster.rs (skip with
#      --no-build).
#   2. For each case below, starts audit_cluster: the tests' fake API server
#      (tests/fake_api, authorizing as the shipped audit ServiceAccount)
#      holding NAMESPACES x PODS Pods of realistic size (managedFields, env,
#      probes, status), their ReplicaSets and Deployments, two pull secrets
#      and three 64 KiB Helm release Secrets per namespace; one Deployment in
#      ten lacks its secrets, so there are findings. It measures, in the
#      same process and before the audit runs, the REFERENCE: listing every
#      Pod through a kube client in pages of the same size and doing nothing
#      with them.
#   3. Runs `pull-secret-injector audit -A` against it RUNS times (default
#      3) under /usr/bin/time and reports the median wall time, its ratio to
#      the reference, the largest peak RSS (VmHWM) and the exit status
#      (1: findings).
#
# Cases (NAMESPACES PODS-PER-NAMESPACE CHUNK OUTPUT):
#   100 100 500 json    the target: 10,000 Pods in 100 namespaces
#   100 100 500 table   the same, buffering the table's rows
#   100 100 100 json    smaller pages
#    10 100 500 json    1,000 Pods: peak RSS should not follow the cluster
#
# Environment: RUNS (default 3), PROFILE (default release; `dev` for a
# quick check of the script), CASES ("NS PODS CHUNK OUTPUT;..." to replace
# the cases above).
#
# Caveats: the fake API and the audit share this machine's cores (the fake
# renders and serializes every page, as an apiserver's watch cache would);
# a real apiserver adds network latency per page, which larger pages
# amortize. Timing targets live here, not in tests.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
PROFILE=${PROFILE:-release}
BUILD=1
for arg in "$@"; do
  case "$arg" in
    --no-build) BUILD=0 ;;
    *) echo "usage: $0 [--no-build]  (RUNS=n)" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (GNU time)" >&2; exit 2; }
if [ "$BUILD" = 1 ]; then
  cargo build --profile "$PROFILE" --locked --bin pull-secret-injector --example audit_cluster
fi
dir_of_profile=$PROFILE; [ "$PROFILE" = dev ] && dir_of_profile=debug
BIN=target/$dir_of_profile/pull-secret-injector
CLUSTER=target/$dir_of_profile/examples/audit_cluster

run_case() {
  local namespaces=$1 pods=$2 chunk=$3 output=$4
  local dir
  dir=$(mktemp -d)
  mkfifo "$dir/in"
  "$CLUSTER" --namespaces "$namespaces" --pods "$pods" --chunk-size "$chunk" \
    --kubeconfig "$dir/kubeconfig" --policy "$dir/policy.yaml" <"$dir/in" >"$dir/log" 2>&1 &
  local cluster=$!
  exec 3>"$dir/in"
  local waited=0
  until grep -q '^ready' "$dir/log"; do
    sleep 0.2; waited=$((waited + 1))
    if [ $waited -gt 600 ] || ! kill -0 "$cluster" 2>/dev/null; then
      cat "$dir/log" >&2; exit 1
    fi
  done
  local reference
  reference=$(awk '/^reference/ {print $2}' "$dir/log")
  local times=() rss_max=0 code=0
  for _ in $(seq "$RUNS"); do
    set +e
    KUBECONFIG="$dir/kubeconfig" /usr/bin/time -f '%e %M' -o "$dir/time" \
      "$BIN" audit -A -o "$output" --chunk-size "$chunk" --policy "$dir/policy.yaml" >"$dir/out" 2>"$dir/err"
    code=$?
    set -e
    if [ "$code" -ge 2 ]; then cat "$dir/err" >&2; exit 1; fi
    read -r secs rss < <(tail -1 "$dir/time")
    times+=("$secs")
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
  done
  local findings
  findings=$(if [ "$output" = json ]; then wc -l <"$dir/out"; else tail -1 "$dir/out" | cut -d' ' -f1; fi)
  local median
  median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  printf '%6d %6d %6s %6s %9s %9s %7s %9.1f %8s %5s\n' \
    "$((namespaces * pods))" "$namespaces" "$chunk" "$output" "$median" "$reference" \
    "$(awk -v a="$median" -v b="$reference" 'BEGIN {printf "%.1f", a / b}')" \
    "$(awk -v k="$rss_max" 'BEGIN {print k / 1024}')" "$findings" "$code"
  exec 3>&-
  wait "$cluster" || true
  rm -rf "$dir"
}

printf '%6s %6s %6s %6s %9s %9s %7s %9s %8s %5s\n' \
  pods ns chunk output audit_s ref_s ratio peak_MiB findings exit
CASES=${CASES:-"100 100 500 json;100 100 500 table;100 100 100 json;10 100 500 json"}
IFS=';' read -ra cases <<<"$CASES"
for c in "${cases[@]}"; do
  # shellcheck disable=SC2086
  run_case $c
done
