#!/usr/bin/env bash
# Deploys everything to one resource group, in order:
#   1. the resource group;  2. infra/main.bicep with its parameters file (az deployment group);
#   3. the package (scripts/package.sh) to the Flex Consumption app (zip deployment);
#   4. the Stream Analytics job started;  5. a smoke check of /api/health.
# Usage:
#   scripts/deploy.sh --resource-group RG --location LOCATION [--parameters FILE] [--what-if] [--dry-run]
# --what-if   shows what the deployment would change (az deployment group what-if) and stops.
# --dry-run   prints every command instead of running it (nothing is needed but bash).
# Needs: az (logged in: az login), the Bicep CLI (az bicep install), zip.
set -euo pipefail
cd "$(dirname "$0")/.."

group="" location="" params="infra/main.bicepparam" what_if=0 dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --resource-group|-g) group=$2; shift 2 ;;
    --location|-l) location=$2; shift 2 ;;
    --parameters|-p) params=$2; shift 2 ;;
    --what-if) what_if=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "deploy.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$group" ] || [ -z "$location" ]; then
  echo "deploy.sh: --resource-group and --location are required (see --help)" >&2
  exit 2
fi

# An argument as a shell would need it written.
quote() {
  case "$1" in
    *[[:space:]\'\"\$\&\;\|\\]*) printf "'%s'" "${1//\'/\'\\\'\'}" ;;
    *) printf '%s' "$1" ;;
  esac
}
# Runs a command, or prints it in --dry-run.
run() {
  if [ "$dry_run" = 1 ]; then
    printf '+'
    for arg in "$@"; do printf ' '; quote "$arg"; done
    printf '\n'
  else
    "$@"
  fi
}
# A deployment output: from az in a real run, a placeholder in --dry-run.
output() {
  if [ "$dry_run" = 1 ]; then
    echo "<$1>"
  else
    az deployment group show -g "$group" -n sensor-anomaly --query "properties.outputs.$1.value" -o tsv
  fi
}

run az group create --name "$group" --location "$location" --output none
if [ "$what_if" = 1 ]; then
  run az deployment group what-if --resource-group "$group" --name sensor-anomaly \
    --template-file infra/main.bicep --parameters "$params"
  exit 0
fi
run az deployment group create --resource-group "$group" --name sensor-anomaly \
  --template-file infra/main.bicep --parameters "$params" --output none
app=$(output functionAppName)
job=$(output streamAnalyticsJob)
url=$(output functionAppUrl)
run scripts/package.sh dist/sensor-anomaly.zip
run az functionapp deployment source config-zip --resource-group "$group" --name "$app" \
  --src dist/sensor-anomaly.zip
run az extension add --name stream-analytics --upgrade --only-show-errors
run az stream-analytics job start --resource-group "$group" --job-name "$job" \
  --output-start-mode JobStartTime
# The app answers once an instance has started: poll /api/health (anonymous) for 5 minutes.
if [ "$dry_run" = 1 ]; then
  echo "+ curl -fsS $url/api/health    # every 5 s until 200, for up to 5 minutes"
else
  healthy=0
  for _ in $(seq 60); do
    if curl -fsS "$url/api/health"; then healthy=1; echo; break; fi
    sleep 5
  done
  [ "$healthy" = 1 ] || { echo "deploy.sh: $url/api/health did not answer 200 within 5 minutes" >&2; exit 1; }
fi
if [ "$dry_run" = 0 ]; then
  echo "deployed: $url (dashboard: $url/api/dashboard?code=<function key>)"
fi
