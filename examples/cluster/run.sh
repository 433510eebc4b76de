#!/usr/bin/env bash
# Three oms nodes on 127.0.0.1, one NATS cluster, R3 streams, separate data
# dirs; node 1 also runs the simulated providers and shopper to drive load.
# Stops everything after DURATION seconds (or on Ctrl-C).
#
#   examples/cluster/run.sh                 # 60 s at 50 orders/s
#   RATE=200 DURATION=120 examples/cluster/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
OMS=${OMS:-bin/oms}
DATA=${DATA:-./data/cluster}
RATE=${RATE:-50}
DURATION=${DURATION:-60}
[ -x "$OMS" ] || make build >/dev/null
mkdir -p "$DATA"
# The three nodes share one credentials directory: the first to start
# writes it, the others read it. The CLI below uses its admin key.
export OMS_CREDENTIALS_DIR="$DATA/credentials" OMS_NKEY="$DATA/credentials/admin.nk"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

routes() { # every node's route address but its own
  local self=$1 out=""
  for j in 1 2 3; do [ "$j" = "$self" ] || out="$out,nats-route://127.0.0.1:622$j"; done
  echo "${out#,}"
}
for i in 1 2 3; do
  sim=false; [ "$i" = 1 ] && sim=true
  "$OMS" serve --node-name "node$i" --data-dir "$DATA/node$i" \
    --nats-listen "127.0.0.1:422$i" --cluster-listen "127.0.0.1:622$i" --routes "$(routes "$i")" \
    --http-listen "127.0.0.1:808$i" --internal-listen "127.0.0.1:809$i" \
    --simulate=$sim --sim-orders-per-second "$RATE" --sim-min-delay 50ms --sim-max-delay 300ms \
    --status-interval 0 >"$DATA/node$i.log" 2>&1 &
  pids+=($!)
  echo "node$i pid $! (client nats://127.0.0.1:422$i, logs $DATA/node$i.log)"
done
printf '%s\n' "${pids[@]}" >"$DATA/pids"

echo "waiting for the cluster to form..."
for _ in $(seq 60); do
  if "$OMS" --server nats://127.0.0.1:4222 cluster status 2>/dev/null | grep -q "3 members"; then break; fi
  sleep 1
done
"$OMS" --server nats://127.0.0.1:4222 cluster status

end=$((SECONDS + DURATION))
while [ $SECONDS -lt $end ]; do
  sleep 5
  for i in 1 2 3; do
    "$OMS" --server "nats://127.0.0.1:422$i" status 2>/dev/null |
      tr -d '\n ' | sed -e 's/.*"node":"\([^"]*\)".*"orders":{\([^}]*\)}.*"lag":\([0-9]*\).*/\1 orders {\2} read-model lag \3/' || true
    echo
  done | sort -u
done
