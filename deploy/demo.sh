#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: set up and build (deploy/build.sh),
# start lowbitd on the model repository, detect objects in a real photo with
# the Python client, write the annotated image, and stop the server.
#
#   deploy/demo.sh [IMAGE]        (default: darknet's dog.jpg)
#
# Environment: LOWBIT_PORT (default 50051), LOWBIT_METRICS_PORT (default 9090).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$repo/deploy/build.sh"

image="${1:-$repo/data/images/dog.jpg}"
port="${LOWBIT_PORT:-50051}"
metrics_port="${LOWBIT_METRICS_PORT:-9090}"
out="$repo/$(basename "${image%.*}")-annotated.jpg"
client="$repo/.venv/bin/lowbit-client"
export LOWBIT_ADDRESS="127.0.0.1:$port"
log="$repo/build/lowbitd-demo.log"

"$repo/build/server/lowbitd" --model-repo "$repo/models" --address "127.0.0.1:$port" \
  --metrics-address "127.0.0.1:$metrics_port" >"$log" 2>&1 &
server_pid=$!
trap 'kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT

echo "demo: waiting for lowbitd on 127.0.0.1:$port (log: $log)"
for _ in $(seq 1 120); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "demo: lowbitd exited during start-up:" >&2; cat "$log" >&2; exit 1
  fi
  if "$client" models >/dev/null 2>&1; then break; fi
  sleep 0.5
done

"$client" models
"$client" detect "$image" --out "$out"
echo "demo: annotated image written to $out"
echo "demo: from http://127.0.0.1:$metrics_port/metrics:"
curl -fsS "http://127.0.0.1:$metrics_port/metrics" | grep -E '^lowbit_(requests_total|request_duration_seconds_(count|sum))' || true
