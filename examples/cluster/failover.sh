#!/usr/bin/env bash
# Run while examples/cluster/run.sh is serving: kill -9 the node that leads
# the order stream, then measure (1) the first order placed through a
# survivor, (2) when the survivors' view drops the dead node, (3) when the
# survivors answer cluster status with the stream re-led.
set -euo pipefail
cd "$(dirname "$0")/../.."
OMS=${OMS:-bin/oms}
DATA=${DATA:-./data/cluster}
export OMS_NKEY="$DATA/credentials/admin.nk"
leader=$("$OMS" --server nats://127.0.0.1:4222 cluster status --json | tr -d '\n ' |
  sed -e 's/.*"stream":"OMS_ORDERS","leader":"\([^"]*\)".*/\1/')
n=${leader#node}
pid=$(sed -n "${n}p" "$DATA/pids")
survivor=$(( n % 3 + 1 ))
echo "OMS_ORDERS is led by $leader (pid $pid); killing it with SIGKILL; measuring through node$survivor"
now() { date +%s.%N; }
t0=$(now)
kill -9 "$pid"
i=0
until "$OMS" --server "nats://127.0.0.1:422$survivor" --timeout 2s order place --user failover \
  --item SIM-0001:1:100 --country DE --postal-code 1 --address x --phone "+49 30 1234567" \
  --idempotency-key "failover-$t0-$i" >/dev/null 2>&1; do i=$((i + 1)); done
t1=$(now)
until "$OMS" --server "nats://127.0.0.1:422$survivor" cluster status 2>/dev/null | grep -q "2 members"; do sleep 0.1; done
t2=$(now)
until "$OMS" --server "nats://127.0.0.1:422$survivor" cluster status --json 2>/dev/null | tr -d '\n ' |
  grep -q "\"stream\":\"OMS_ORDERS\",\"leader\":\"node[^$n]\""; do sleep 0.1; done
t3=$(now)
awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" 'BEGIN {
  printf "first order acknowledged by a survivor: %.2fs after the kill (%s failed tries)\n", b-a, "'"$i"'"
  printf "dead node dropped from the membership:   %.2fs after the kill\n", c-a
  printf "OMS_ORDERS led by a survivor:            %.2fs after the kill\n", d-a }'
"$OMS" --server "nats://127.0.0.1:422$survivor" cluster status
