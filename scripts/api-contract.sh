#!/usr/bin/env bash
# Contract test of the handler's HTTP API: Schemathesis generates requests from the OpenAPI
# document (crates/service/src/http/openapi.json) and checks every response against it.
#
#   scripts/api-contract.sh                          # 100 examples per operation
#   CONTRACT_MAX_EXAMPLES=500 scripts/api-contract.sh
#   CONTRACT_SEED=1 scripts/api-contract.sh          # reproduce a run
#
# Needs target/release/sensor-anomaly-handler (built here when missing) and ONNX Runtime in
# .ort/lib (scripts/setup.sh). Schemathesis comes from scripts/requirements-contract.txt into
# .venv-contract. The handler runs on a free port with a scratch SQLite store and a scratch copy
# of models/default.onnx as its models folder (POST /api/reload is called with generated bodies:
# it only reads, but the repository's model is never given to it), and is stopped on exit.
#
# The document is read from GET /api/openapi.json when the handler serves the file as it is now
# (a binary built before the last change to the file serves an older one: then the file is read;
# CONTRACT_SCHEMA=url|file forces one). Every check and every phase runs (examples, coverage,
# fuzzing, and the stateful phase, which follows the document's links). Before the run one host
# invocation of normal and anomalous windows is sent, so that history, the dashboard and the
# links have rows to follow.
#
# Other settings: CONTRACT_WORKERS (default 2), CONTRACT_MAX_TIME (seconds, unset: no budget),
# CONTRACT_REPORT_DIR (default target/api-contract: Schemathesis' output, its JUnit and NDJSON
# reports, crash files for `st replay`, and the handler's log), CONTRACT_EXTRA_ARGS (more
# `st run` options, word-split).
#
# Exit status: 0 when no check failed, 1 on any failure or error.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

max_examples="${CONTRACT_MAX_EXAMPLES:-100}"
workers="${CONTRACT_WORKERS:-2}"
schema_mode="${CONTRACT_SCHEMA:-auto}"
report_dir="${CONTRACT_REPORT_DIR:-$root/target/api-contract}"
document=crates/service/src/http/openapi.json
handler=target/release/sensor-anomaly-handler
venv=.venv-contract

step() { printf '==> %s\n' "$*" >&2; }

# --- Schemathesis, pinned -------------------------------------------------------------------
stamp="$venv/.requirements.sha256"
want=$(sha256sum scripts/requirements-contract.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/st" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  step "installing scripts/requirements-contract.txt into $venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r scripts/requirements-contract.txt
  echo "$want" > "$stamp"
fi

# --- The handler ------------------------------------------------------------------------------
if ! ls .ort/lib/libonnxruntime.so* >/dev/null 2>&1; then
  step "no ONNX Runtime in .ort/lib: running scripts/setup.sh"
  scripts/setup.sh
fi
if [ ! -x "$handler" ]; then
  step "building the handler (release)"
  cargo build --release -p sensor-anomaly-service
fi

work=$(mktemp -d)
handler_pid=
cleanup() {
  if [ -n "$handler_pid" ] && kill -0 "$handler_pid" 2>/dev/null; then
    kill "$handler_pid" 2>/dev/null || true
    wait "$handler_pid" 2>/dev/null || true
  fi
  mkdir -p "$report_dir"
  [ -f "$work/handler.log" ] && cp "$work/handler.log" "$report_dir/handler.log"
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$work/models" "$report_dir"
cp models/default.onnx "$work/models/default.onnx"
step "starting the handler (store $work/anomalies.sqlite, models $work/models)"
env -u ANOMALY_SQL_CONNECTION_STRING -u APPLICATIONINSIGHTS_CONNECTION_STRING \
  ORT_DYLIB_PATH="$root/.ort/lib" \
  ANOMALY_MODEL_PATH="$work/models/default.onnx" \
  ANOMALY_MODELS_DIR="$work/models" \
  ANOMALY_SQLITE_PATH="$work/anomalies.sqlite" \
  FUNCTIONS_CUSTOMHANDLER_PORT=0 \
  RUST_LOG="${RUST_LOG:-warn},sensor_anomaly_service::startup=info" \
  "$handler" >"$work/handler.log" 2>&1 &
handler_pid=$!

port=
for _ in $(seq 1 600); do
  port=$(grep -o 'handler ready on 127\.0\.0\.1:[0-9]*' "$work/handler.log" 2>/dev/null | head -1 | grep -o '[0-9]*$' || true)
  [ -n "$port" ] && break
  if ! kill -0 "$handler_pid" 2>/dev/null; then
    cat "$work/handler.log" >&2
    echo "api-contract: the handler exited before it was ready" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$port" ]; then
  cat "$work/handler.log" >&2
  echo "api-contract: no ready line within 60 s" >&2
  exit 1
fi
base="http://127.0.0.1:$port"
step "handler ready on $base"

# --- Data for history, the dashboard and the links ---------------------------------------------
"$venv/bin/python" - "$base" <<'PY'
import datetime, json, sys
import requests

base = sys.argv[1]
model = requests.get(f"{base}/api/model", timeout=30).json()
names, mean, std = model["feature_names"], model["feature_mean"], model["feature_std"]
now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
bodies = []
for d in range(3):
    for minute in range(30, 0, -1):
        # The document's examples name pump-001.
        window = {"device_id": f"pump-{d + 1:03d}",
                  "window_end": (now - datetime.timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")}
        for i, name in enumerate(names):
            window[name] = mean[i]
        if minute % 7 == 0:  # one feature far off: an anomaly
            i = (minute + d) % len(names)
            window[names[i]] = mean[i] + 40 * std[i]
        bodies.append(json.dumps(window))
n = len(bodies)
enc = json.dumps
invocation = {
    "Data": {"events": enc(bodies)},
    "Metadata": {
        "PartitionContext": {"EventHubName": "windows", "ConsumerGroup": "$Default", "PartitionId": "0"},
        "SequenceNumberArray": enc(list(range(1, n + 1))),
        "OffsetArray": enc([str(s * 512) for s in range(1, n + 1)]),
        "EnqueuedTimeUtcArray": enc([now.strftime("%Y-%m-%dT%H:%M:%S.123")] * n),
        "RetryContext": {"RetryCount": 0, "MaxRetryCount": 5, "Exception": None, "Instance": None, "State": {}},
    },
}
response = requests.post(f"{base}/ScoreWindows", json=invocation, timeout=60)
response.raise_for_status()
outputs = response.json()["Outputs"]
print(f"seeded {n} windows: {len(outputs['alerts'])} alerts, {len(outputs['deadletter'])} dead letters", file=sys.stderr)
if not outputs["alerts"]:
    sys.exit("api-contract: the seed invocation gave no alerts")
PY

# --- The run ------------------------------------------------------------------------------------
case "$schema_mode" in
  auto)
    # The served document is the file as it was when the binary was built: a stale binary
    # serves an older one, and then the file is what is tested.
    schema_mode=file
    if curl -sf -o "$work/served.json" "$base/api/openapi.json"; then
      if "$venv/bin/python" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' \
        "$work/served.json" "$document"; then
        schema_mode=url
      else
        step "the handler serves another /api/openapi.json than $document: rebuild it (testing the file)"
      fi
    fi ;;
  url|file) ;;
  *) echo "api-contract: CONTRACT_SCHEMA must be auto, url or file" >&2; exit 2 ;;
esac
if [ "$schema_mode" = url ]; then
  location=("$base/api/openapi.json")
  step "schema: $base/api/openapi.json"
else
  location=("$document" --url "$base")
  step "schema: $document"
fi

# Two things a schema cannot say, and the checks that take their place:
# - POST /api/reload: whether a file is a model that loads (an ONNX graph with the contract's
#   metadata), or names one inside the models folder. A generated, well-formed body is refused
#   with 422 there, so 422 counts as accepting it.
# - POST /api/score and /api/score/batch: whether the model's score for a window is finite.
#   Features far from the training range (which the schema allows: any finite 32-bit float)
#   overflow the model, and the window is refused with 422 by design (dead letter
#   `non_finite_score` on the ingestion path). 422 counts as accepting a valid window there only
#   with that kind (`"kind": "non_finite_score"`): `non_finite_is_the_only_refusal` below fails any
#   other 422.
# And two more checks: every alert and dead letter in a ScoreWindows response follows its JSON
# Schema (schemas/), and every operation answered 2xx at least once in the run.
# (Schemathesis keeps its crash files for `st replay` under $report_dir/cache.)
cat > "$work/schemathesis.toml" <<TOML
[cache]
directory = "$report_dir/cache"

[[operations]]
include-operation-id = ["reloadModel", "scoreWindow", "scoreBatch"]
checks.positive_data_acceptance.expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
TOML
cat > "$work/contract_hooks.py" <<'PY'
import json
import os

import jsonschema_rs
import schemathesis
from schemathesis.specs.openapi.checks import is_unexpected_http_status_case

SCORING = {"POST /api/score", "POST /api/score/batch"}
NON_FINITE = "non_finite_score"
SCHEMAS = os.environ["CONTRACT_SCHEMAS_DIR"]
MESSAGES = {
    "alerts": jsonschema_rs.validator_for(json.load(open(f"{SCHEMAS}/alert.v1.schema.json"))),
    "deadletter": jsonschema_rs.validator_for(json.load(open(f"{SCHEMAS}/dead-letter.v2.schema.json"))),
}


@schemathesis.check
def invocation_messages_follow_their_schemas(ctx, response, case):
    """Each alert and dead letter of a ScoreWindows response is JSON text following schemas/."""
    if case.operation.label != "POST /ScoreWindows" or response.status_code != 200:
        return None
    outputs = response.json().get("Outputs", {})
    for binding, validator in MESSAGES.items():
        for i, text in enumerate(outputs.get(binding, [])):
            message = json.loads(text)
            errors = [f"{e.message} at /{'/'.join(map(str, e.instance_path))}" for e in validator.iter_errors(message)]
            if errors:
                raise AssertionError(f"Outputs.{binding}[{i}] does not follow its schema: {'; '.join(errors[:3])}\n{text[:500]}")
    return None


@schemathesis.check
def non_finite_is_the_only_refusal(ctx, response, case):
    """A schema-valid window is refused (422) only when the model's score for it is not finite."""
    if case.operation.label not in SCORING or case.meta is None or is_unexpected_http_status_case(case):
        return None
    if not case.meta.generation.mode.is_positive or response.status_code != 422:
        return None
    body = response.json()
    if body.get("kind") != NON_FINITE:
        error = body.get("error")
        raise AssertionError(f"Schema-valid window refused with 422 ({body.get('kind')}): {error}")
    return None


@schemathesis.check
class EveryOperationSucceeds:
    """Every operation tested answered 2xx at least once: the success bodies were checked."""

    def __init__(self):
        self.tested = set()
        self.succeeded = set()

    def after_response(self, ctx, response, case):
        self.tested.add(case.operation.label)
        if 200 <= response.status_code < 300:
            self.succeeded.add(case.operation.label)

    def after_run(self, ctx):
        never = sorted(self.tested - self.succeeded)
        if never:
            raise AssertionError("never answered 2xx: " + ", ".join(never))
PY

seed_args=()
[ -n "${CONTRACT_SEED:-}" ] && seed_args=(--seed "$CONTRACT_SEED")
time_args=()
[ -n "${CONTRACT_MAX_TIME:-}" ] && time_args=(--max-time "$CONTRACT_MAX_TIME")
# shellcheck disable=SC2206
extra_args=(${CONTRACT_EXTRA_ARGS:-})

ndjson="$report_dir/events.ndjson"
rm -f "$ndjson"
step "st run: all checks, all phases, $max_examples examples per operation, $workers workers"
started=$(date +%s)
status=0
PYTHONPATH="$work" SCHEMATHESIS_HOOKS=contract_hooks CONTRACT_SCHEMAS_DIR="$root/schemas" \
HYPOTHESIS_STORAGE_DIRECTORY="$report_dir/hypothesis" \
"$venv/bin/st" --config-file "$work/schemathesis.toml" run "${location[@]}" \
  --checks all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$max_examples" \
  --workers "$workers" \
  --request-timeout 30 \
  --generation-database none \
  --report junit,ndjson \
  --report-dir "$report_dir" \
  --report-ndjson-path "$ndjson" \
  --no-color \
  "${seed_args[@]}" "${time_args[@]}" "${extra_args[@]}" 2>&1 | tee "$report_dir/st.log" || status=$?
elapsed=$(( $(date +%s) - started ))

if ! kill -0 "$handler_pid" 2>/dev/null; then
  echo "api-contract: the handler died during the run (log: $report_dir/handler.log)" >&2
  status=1
fi
panics=$(grep -c 'panicked at' "$work/handler.log" || true)
if [ "$panics" -gt 0 ]; then
  echo "api-contract: the handler panicked $panics time(s) (requests answered with no response); see $report_dir/handler.log" >&2
  grep -A1 'panicked at' "$work/handler.log" | grep -v '^--$' | sort | uniq -c >&2
  status=1
fi

"$venv/bin/python" - "$ndjson" "$elapsed" "$status" "$report_dir/st.log" <<'PY'
import json, sys

path, elapsed, status, log = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
# Schemathesis' own count ("N generated, M found K unique failures"), after "Test cases:".
log_lines = [line.strip() for line in open(log, encoding="utf-8", errors="replace")]
counted = next((log_lines[i + 1] for i, line in enumerate(log_lines[:-1]) if line == "Test cases:"), "no summary")
cases, failed_cases, errors, by_check = set(), set(), 0, {}
try:
    lines = open(path, encoding="utf-8").read().splitlines()
except FileNotFoundError:
    lines = []
for line in lines:
    (kind, body), = json.loads(line).items()
    if kind == "ScenarioFinished":
        recorder = body.get("recorder") or {}
        cases.update(recorder.get("cases", {}))
        for case_id, checks in (recorder.get("checks") or {}).items():
            for check in checks:
                if check.get("status") == "failure":
                    failed_cases.add(case_id)
                    by_check.setdefault(check["name"], set()).add(case_id)
        if body.get("status") == "error":
            errors += 1
    elif kind == "NonFatalError":
        errors += 1
detail = ", ".join(f"{name}: {len(ids)}" for name, ids in sorted(by_check.items()))
print(f"api-contract: {counted}; {len(cases)} cases, {len(failed_cases)} of them failing"
      + (f" ({detail})" if detail else "")
      + f", {errors} errors, in {elapsed} s: {'FAILED' if status else 'passed'}")
PY
exit "$status"
