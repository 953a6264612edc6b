#!/usr/bin/env bash
# Measures the expected time of each runbook (provision, suspend, reactivate, delete, restore,
# purge) end to end through the CLI, against a fresh server on a temp data dir. Prints a
# Markdown table. Usage: scripts/runbook-timings.sh [path/to/companyos] [repetitions]
set -euo pipefail
bin="${1:-target/release/companyos}"
reps="${2:-20}"
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

. "$(dirname "$0")/serve-fresh.sh"
serve_fresh "$bin" "$work" --approval-required purge
approver="$("$bin" operator create --name approver --role approver --output json | sed -n 's/.*"token": "\(.*\)".*/\1/p')"

ms() { local start end; start=$(date +%s%N); "$@" >/dev/null; end=$(date +%s%N); echo $(( (end - start) / 1000000 )); }
declare -A total max
for step in provision suspend reactivate delete restore purge; do total[$step]=0; max[$step]=0; done
record() { total[$1]=$(( ${total[$1]} + $2 )); [ "$2" -gt "${max[$1]}" ] && max[$1]=$2 || true; }

for i in $(seq "$reps"); do
  id="runbook-$i"
  record provision "$(ms "$bin" tenant create "$id" --name "Runbook $i" --plan standard --home-region eu-west-1)"
  record suspend "$(ms "$bin" tenant suspend "$id" --reason drill)"
  record reactivate "$(ms "$bin" tenant reactivate "$id" --reason drill)"
  record delete "$(ms "$bin" tenant delete "$id" --reason drill --confirm "$id")"
  record restore "$(ms "$bin" tenant restore "$id" --reason drill)"
  "$bin" tenant delete "$id" --reason drill --confirm "$id" >/dev/null
  start=$(date +%s%N)
  "$bin" tenant purge "$id" --reason drill --confirm "$id" --output json >"$work/purge.json"
  approval="$(sed -n 's/.*"id": "\(apr_[a-z0-9]*\)".*/\1/p' "$work/purge.json" | head -1)"
  COMPANYOS_TOKEN="$approver" "$bin" approval approve "$approval" >/dev/null
  end=$(date +%s%N)
  record purge $(( (end - start) / 1000000 ))
done

echo "| runbook step (CLI, end to end) | mean ms | max ms |"
echo "|---|---|---|"
for step in provision suspend reactivate delete restore purge; do
  echo "| $step | $(( ${total[$step]} / reps )) | ${max[$step]} |"
done
echo
echo "measured with $reps repetitions by scripts/runbook-timings.sh on $(nproc) cores, $(date -u +%Y-%m-%d)"
