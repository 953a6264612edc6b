# Sourced by the measurement scripts: `serve_fresh BIN WORKDIR [serve flags...]` starts
# `companyos serve` on a fresh data dir in WORKDIR, on a free port, and sets `server` (its pid),
# COMPANYOS_URL and COMPANYOS_TOKEN (the admin token it printed). The caller's EXIT trap kills
# "$server".
serve_fresh() {
  local bin="$1" work="$2"
  shift 2
  "$bin" serve --data-dir "$work/data" --listen 127.0.0.1:0 "$@" >"$work/serve.out" 2>"$work/serve.err" &
  server=$!
  for _ in $(seq 100); do grep -q listening "$work/serve.out" 2>/dev/null && break; sleep 0.1; done
  export COMPANYOS_URL COMPANYOS_TOKEN
  COMPANYOS_URL="$(awk '/listening on/ {print $3}' "$work/serve.out")"
  COMPANYOS_TOKEN="$(awk '/admin token/ {print $NF}' "$work/serve.out")"
}
