#!/usr/bin/env bash
# Hot-path cost of the Application Insights exporter: the demo's HTTP throughput (windows/s)
# without and with export to a local ingestion endpoint, RUNS times each, interleaved; prints
# the medians and their ratio. Usage: scripts/bench-telemetry.sh [RUNS] [demo options...]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
shift || true
scripts/setup.sh >&2
bin=target/release/sensor-anomaly
work=$(mktemp -d)
port_file="$work/port"
# A local ingestion endpoint: accepts every POST to /v2/track and counts the bytes.
python3 - "$port_file" > "$work/ingest.log" 2>&1 <<'PY' &
import http.server, json, sys
class Track(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        print(self.path, len(body), flush=True)
        reply = json.dumps({"itemsReceived": 0, "itemsAccepted": 0, "errors": []}).encode()
        self.send_response(200); self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply))); self.end_headers(); self.wfile.write(reply)
    def log_message(self, *args): pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Track)
open(sys.argv[1], "w").write(str(server.server_address[1]))
server.serve_forever()
PY
sink=$!
trap 'kill $sink 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
cs="InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:$(cat "$port_file")/"
demo() { "$bin" demo --json --hours 24 --db "$work/demo.sqlite" "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["windows_per_second"])'; }
off=(); on=()
for i in $(seq "$runs"); do
  off+=("$(env -u APPLICATIONINSIGHTS_CONNECTION_STRING bash -c "$(declare -f demo); bin=$bin work=$work demo $*")")
  on+=("$(APPLICATIONINSIGHTS_CONNECTION_STRING="$cs" bash -c "$(declare -f demo); bin=$bin work=$work demo $*")")
  echo "run $i: without ${off[-1]} windows/s, with ${on[-1]} windows/s" >&2
done
posts=$(wc -l < "$work/ingest.log")
python3 - "${off[*]}" "${on[*]}" "$posts" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
a, b = statistics.median(off), statistics.median(on)
print(f"windows/s, median of {len(off)} runs: without export {a:,.0f}, with export {b:,.0f}; "
      f"with/without = {b / a:.3f} ({(1 - b / a) * 100:+.1f}% cost); {sys.argv[3]} uploads received")
PY
