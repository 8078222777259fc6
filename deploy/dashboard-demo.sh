#!/usr/bin/env bash
# The dashboard with live data, without containers: starts lowbitd,
# Prometheus and two camera bridges (lowbit-client watch) as local processes,
# runs the load generator against lowbitd, and takes headless-Chromium
# screenshots of Prometheus's graph page showing the queries of
# deploy/grafana/dashboards/lowbit.json. With a grafana-server on PATH it also
# starts Grafana with deploy/grafana's provisioning and screenshots the
# dashboard itself (Grafana is not packaged in Debian, so by default it is not there).
#
#   deploy/dashboard-demo.sh [OUT_DIR] [LOAD_SECONDS]     (default /tmp/lowbit-dashboard-demo, 60)
#
# Needs: a built lowbitd ($LOWBITD, default build/server/lowbitd), the model
# repository (models/, nanodet-g and blazeface), the SDK in $PYTHON's
# environment (.venv), and Debian's prometheus and chromium
# (apt-get install prometheus chromium). Everything listens on 127.0.0.1 only.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${1:-/tmp/lowbit-dashboard-demo}"
LOAD_SECONDS="${2:-60}"
LOWBITD="${LOWBITD:-$ROOT/build/server/lowbitd}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
BIN="$(dirname "$PYTHON")"
GRPC_PORT="${GRPC_PORT:-50151}" METRICS_PORT="${METRICS_PORT:-50152}" PROM_PORT="${PROM_PORT:-50190}"
WATCH_PORT="${WATCH_PORT:-50153}" GRAFANA_PORT="${GRAFANA_PORT:-50130}"

for tool in prometheus chromium; do
  command -v "$tool" >/dev/null || { echo "dashboard-demo: $tool missing: apt-get install $tool" >&2; exit 2; }
done
[ -x "$LOWBITD" ] || { echo "dashboard-demo: no lowbitd at $LOWBITD (set LOWBITD)" >&2; exit 2; }

rm -rf "$OUT" && mkdir -p "$OUT/models" "$OUT/prometheus"
for model in nanodet-g blazeface; do ln -s "$ROOT/models/$model" "$OUT/models/$model"; done

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_http() {  # URL SECONDS
  local deadline=$((SECONDS + $2))
  until curl -sf -o /dev/null "$1"; do
    [ "$SECONDS" -lt "$deadline" ] || { echo "dashboard-demo: $1 not up after $2 s" >&2; exit 1; }
    sleep 0.5
  done
}

"$LOWBITD" --model-repo "$OUT/models" --address "127.0.0.1:$GRPC_PORT" \
  --metrics-address "127.0.0.1:$METRICS_PORT" --workers 2 >"$OUT/lowbitd.log" 2>&1 &
PIDS+=($!); LOWBITD_PID=$!

cat >"$OUT/prometheus/prometheus.yml" <<EOF
global: {scrape_interval: 2s, evaluation_interval: 2s}
scrape_configs:
  - {job_name: lowbitd, static_configs: [{targets: ['127.0.0.1:$METRICS_PORT']}]}
  - {job_name: lowbit-watch, static_configs: [{targets: ['127.0.0.1:$WATCH_PORT']}]}
EOF
prometheus --config.file="$OUT/prometheus/prometheus.yml" --storage.tsdb.path="$OUT/prometheus/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$OUT/prometheus.log" 2>&1 &
PIDS+=($!)

wait_http "http://127.0.0.1:$METRICS_PORT/metrics" 120
wait_http "http://127.0.0.1:$PROM_PORT/-/ready" 60

GRAFANA=""
if command -v grafana-server >/dev/null; then
  # Grafana from deploy/grafana, its datasource pointed at this Prometheus.
  GRAFANA="http://127.0.0.1:$GRAFANA_PORT"
  mkdir -p "$OUT/grafana/provisioning/datasources" "$OUT/grafana/provisioning/dashboards" "$OUT/grafana/data"
  sed "s|http://prometheus:9090|http://127.0.0.1:$PROM_PORT|" \
    "$ROOT/deploy/grafana/provisioning/datasources/prometheus.yaml" \
    >"$OUT/grafana/provisioning/datasources/prometheus.yaml"
  sed "s|/var/lib/grafana/dashboards|$ROOT/deploy/grafana/dashboards|" \
    "$ROOT/deploy/grafana/provisioning/dashboards/lowbit.yaml" >"$OUT/grafana/provisioning/dashboards/lowbit.yaml"
  GF_PATHS_PROVISIONING="$OUT/grafana/provisioning" GF_PATHS_DATA="$OUT/grafana/data" \
    GF_SERVER_HTTP_ADDR=127.0.0.1 GF_SERVER_HTTP_PORT="$GRAFANA_PORT" GF_AUTH_ANONYMOUS_ENABLED=true \
    grafana-server --homepath "${GRAFANA_HOME:-/usr/share/grafana}" >"$OUT/grafana.log" 2>&1 &
  PIDS+=($!)
  wait_http "$GRAFANA/api/health" 120
else
  echo "dashboard-demo: no grafana-server on PATH: screenshots of Prometheus's graph page instead" >&2
fi

# Two cameras from the recording at its own 10 frames/s, one bridge with its metrics.
"$BIN/lowbit-client" watch "$ROOT/data/images/vtest.avi" "$ROOT/data/images/vtest.avi" \
  --camera-id street --camera-id lobby --realtime --loop --fps 5 \
  --address "127.0.0.1:$GRPC_PORT" --metrics-address "127.0.0.1:$WATCH_PORT" \
  --output "$OUT/watch.jsonl" 2>"$OUT/watch.log" &
PIDS+=($!)

# Open-loop load: 8 cameras x 4 frames/s over DetectStream with a 400 ms age
# limit, more than 2 cores answer at once, so the queue, the batcher and the
# drop counters all move. A SIGHUP half-way shows as model loads.
( sleep $((LOAD_SECONDS / 2)); kill -HUP "$LOWBITD_PID" ) &
"$BIN/lowbit-loadgen" open --address "127.0.0.1:$GRPC_PORT" --video "$ROOT/data/images/vtest.avi" \
  --cameras 8 --fps 4 --max-frame-age-ms 400 --duration "$LOAD_SECONDS" --warmup 2 --progress off \
  >"$OUT/loadgen.txt" 2>&1 || echo "dashboard-demo: loadgen failed, see $OUT/loadgen.txt" >&2
sleep 6  # two more scrapes

shot() {  # URL PNG HEIGHT
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1600,"$3" \
    --virtual-time-budget=15000 --screenshot="$2" "$1" >/dev/null 2>>"$OUT/chromium.log"
}

# Prometheus's graph page, one graph per dashboard query, in the dashboard's
# order, over the last RANGE (default 2m); pages of six. $__rate_interval
# becomes 20s, what Grafana makes of it with this 2 s scrape interval at this
# range (four scrapes plus headroom).
"$PYTHON" - "$ROOT/deploy/grafana/dashboards/lowbit.json" "http://127.0.0.1:$PROM_PORT" "$OUT" "${RANGE:-2m}" <<'EOF'
import json, sys, urllib.parse
board, base, out, window = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
exprs = []
for panel in board["panels"]:
    for target in panel.get("targets", []):
        expr = target["expr"].replace("$__rate_interval", "20s").replace("$__range", window).replace("$model", ".*")
        exprs.append((panel["title"], expr))
with open(f"{out}/queries.txt", "w") as listing:
    for title, expr in exprs:
        listing.write(f"{title}: {expr}\n")
pages = [exprs[i:i + 6] for i in range(0, len(exprs), 6)]
with open(f"{out}/pages.txt", "w") as urls:
    for page in pages:
        params = {}
        for index, (_, expr) in enumerate(page):
            params.update({f"g{index}.expr": expr, f"g{index}.tab": "0", f"g{index}.range_input": window})
        urls.write(f"{base}/graph?{urllib.parse.urlencode(params)}\n")
EOF
page=0
while read -r url; do
  page=$((page + 1))
  shot "$url" "$OUT/prometheus-$page.png" 4500  # six graphs fit: the page does not scroll
done <"$OUT/pages.txt"
if [ -n "$GRAFANA" ]; then
  shot "$GRAFANA/d/lowbit/lowbit?orgId=1&from=now-5m&to=now&kiosk" "$OUT/grafana.png" 2400
fi

echo "dashboard-demo: screenshots in $OUT:" && ls "$OUT"/*.png
echo "load: $(grep -m1 -iE 'answered|offered' "$OUT/loadgen.txt" || true)"
