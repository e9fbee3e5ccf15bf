#!/usr/bin/env bash
# Measures the cache-hit path of `agentnet serve` against nginx's proxy_cache
# on this machine, and runs the in-process cache benchmark (build/bench_cache)
# when it has been built. `make bench` builds first and then runs this script.
#
# Both proxies sit in front of the same fake upstream (bench/upstream.py) and
# receive the same POST /v1/chat/completions from wrk, so after one warm-up
# request every response is a cache hit. The gateway runs with --threads N and
# nginx with worker_processes N, N being the number of online CPUs. Each
# configuration (access logs off, then on) runs ROUNDS rounds of
# agentnet-then-nginx, and the summary keeps the round of each proxy with the
# highest requests/s. Besides wrk's numbers it reports the CPU time per
# request of each proxy, read from /proc. The run fails unless the upstream
# was called exactly once per proxy, which shows that every other request
# was a cache hit.
#
# Environment (defaults in brackets):
#   BUILD              build directory that contains agentnet [build]
#   BENCH_DURATION     seconds of load per wrk run, 1 to 60 [10]
#   BENCH_CONNECTIONS  wrk connections, 1 to 1000 [50]
#   BENCH_ROUNDS       rounds per configuration, 1 to 5 [2]
#   BENCH_KEEP=1       keep the temporary directory with logs and caches
#
# All load goes to 127.0.0.1. Every process started here is stopped on exit,
# and the temporary directory is removed unless the run failed or
# BENCH_KEEP=1, in which case its path is printed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build_dir=$root/${BUILD:-build}
agentnet=$build_dir/agentnet
bench_cache=$build_dir/bench_cache
duration=${BENCH_DURATION:-10}
connections=${BENCH_CONNECTIONS:-50}
rounds=${BENCH_ROUNDS:-2}
threads=$(nproc)
body_file=$root/bench/request.json
url_path=/v1/chat/completions

die() {
  echo "bench: $*" >&2
  exit 1
}

check_range() {
  local name=$1 value=$2 min=$3 max=$4
  if ! [[ $value =~ ^[0-9]+$ ]] || [ "$value" -lt "$min" ] || [ "$value" -gt "$max" ]; then
    die "invalid $name '$value': expected an integer from $min to $max"
  fi
}

check_range BENCH_DURATION "$duration" 1 60
check_range BENCH_CONNECTIONS "$connections" 1 1000
check_range BENCH_ROUNDS "$rounds" 1 5

missing=()
for tool in wrk nginx curl python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench: missing tools: ${missing[*]}" >&2
  echo "bench: install them (Debian packages wrk, nginx-light, curl, python3) with:" >&2
  echo "  sudo $root/scripts/install-deps.sh" >&2
  exit 1
fi
[ -x "$agentnet" ] || die "$agentnet not found: build it first with 'make' (or run 'make bench')"

work=$(mktemp -d /tmp/agentnet-bench.XXXXXX)
started_pids=()

# Stops one process started by this script: SIGTERM, then SIGKILL after 10 s.
stop_process() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "bench: process $pid did not stop within 10 s of SIGTERM; sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$? i
  trap - EXIT INT TERM
  for ((i = ${#started_pids[@]} - 1; i >= 0; i--)); do
    stop_process "${started_pids[i]}"
  done
  if [ "$status" -ne 0 ] || [ "${BENCH_KEEP:-0}" = 1 ]; then
    echo "bench: logs, caches and wrk outputs kept in $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

forget_pid() {
  local pid=$1 kept=() p
  for p in "${started_pids[@]}"; do
    [ "$p" = "$pid" ] || kept+=("$p")
  done
  started_pids=("${kept[@]}")
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits up to 10 s until a GET of URL gets any HTTP response. Fails with the
# tail of LOG when the process PID exits or the time runs out.
wait_ready() {
  local name=$1 pid=$2 url=$3 log=$4 i
  for i in $(seq 100); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "bench: $name exited during startup; last lines of $log:" >&2
      tail -n 20 "$log" >&2 || true
      exit 1
    fi
    curl -s -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.1
  done
  echo "bench: $name did not respond to $url within 10 s; last lines of $log:" >&2
  tail -n 20 "$log" >&2 || true
  exit 1
}

# Sends the benchmark request twice and checks that the second response is a
# cache hit with the same body as the first. HEADER is the response header
# that reports the cache result and HIT its value on a hit.
check_warm() {
  local name=$1 port=$2 header=$3 hit=$4 dir=$work/warm-$1-$5 i status value
  mkdir -p "$dir"
  for i in 1 2; do
    status=$(curl -s --max-time 10 -o "$dir/body$i" -D "$dir/headers$i" -w '%{http_code}' \
      -H 'Content-Type: application/json' --data-binary "@$body_file" \
      "http://127.0.0.1:$port$url_path") || die "$name: warm-up request $i failed (curl exit $?)"
    [ "$status" = 200 ] || die "$name: warm-up request $i returned HTTP $status: $(head -c 300 "$dir/body$i")"
  done
  value=$(tr -d '\r' <"$dir/headers2" | awk -F': ' -v h="$header" 'tolower($1) == tolower(h) { print $2 }')
  [ "$value" = "$hit" ] || die "$name: second warm-up response has '$header: $value', expected '$hit'"
  cmp -s "$dir/body1" "$dir/body2" || die "$name: cached body differs from the upstream body (see $dir)"
  echo "  $name: second request answered with '$header: $value'"
}

# Converts a wrk latency such as 812.00us, 1.25ms, 2.01s or 1.50m to ms.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; unit = v; sub(/^[0-9.]+/, "", unit)
    if (unit == "us") n /= 1000; else if (unit == "s") n *= 1000; else if (unit == "m") n *= 60000
    else if (unit != "ms") { print "nan"; exit }
    printf "%.3f", n
  }'
}

clock_ticks_per_second=$(getconf CLK_TCK)

# Prints the CPU time (user + system, in clock ticks) used so far by PID and
# its child processes, which for nginx are the workers and cache processes.
cpu_ticks() {
  local total=0 pid ticks
  for pid in "$1" $(ps -o pid= --ppid "$1" 2>/dev/null); do
    # Fields 14 and 15 of /proc/PID/stat are utime and stime. Cutting at the
    # last ')' skips the command name, which may contain spaces.
    ticks=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 }') || ticks=0
    total=$((total + ${ticks:-0}))
  done
  echo "$total"
}

# Result tables, keyed by "CONFIG PROXY ROUND".
declare -A rps p50 p99 total_requests cpu_us socket_errors
configs=(off on)
proxies=(agentnet nginx)

# Runs wrk once against PORT and records its numbers under KEY, with the CPU
# time per request that the proxy process PID and its children used.
run_wrk() {
  local key=$1 port=$2 pid=$3 out=$work/wrk-${1// /-}.txt errors non2xx status=0 ticks_before ticks_after

  ticks_before=$(cpu_ticks "$pid")
  timeout $((duration + 30)) wrk -t1 -c"$connections" -d"${duration}s" --latency \
    -s "$root/bench/post.lua" "http://127.0.0.1:$port$url_path" -- "$body_file" >"$out" 2>&1 || status=$?
  if [ "$status" -ne 0 ]; then
    echo "bench: wrk exited with status $status for $key; its output:" >&2
    cat "$out" >&2
    exit 1
  fi
  ticks_after=$(cpu_ticks "$pid")

  rps[$key]=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
  p50[$key]=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$out")")
  p99[$key]=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$out")")
  total_requests[$key]=$(awk '/ requests in / { print $1 }' "$out")
  non2xx=$(awk -F': *' '/Non-2xx or 3xx responses/ { print $2 }' "$out")
  errors=$(awk -F': *' '/Socket errors/ { print $2 }' "$out")
  if [ -z "${rps[$key]}" ] || [ -z "${total_requests[$key]}" ]; then
    echo "bench: could not read the results of wrk for $key; its output:" >&2
    cat "$out" >&2
    exit 1
  fi

  cpu_us[$key]=$(awk -v t=$((ticks_after - ticks_before)) -v hz="$clock_ticks_per_second" -v n="${total_requests[$key]}" \
    'BEGIN { printf "%.1f", t / hz * 1e6 / n }')
  socket_errors[$key]=${errors:-none}

  printf '  round %s  %-8s  %6.0f requests/s  p50 %6.3f ms  p99 %6.3f ms  %5.1f CPU us/request  %7s requests  non-2xx %s  socket errors: %s\n' \
    "${key##* }" "$(cut -d' ' -f2 <<<"$key")" "${rps[$key]}" "${p50[$key]}" "${p99[$key]}" "${cpu_us[$key]}" \
    "${total_requests[$key]}" "${non2xx:-0}" "${socket_errors[$key]}"
  if [ -n "$non2xx" ] && [ "$non2xx" != 0 ]; then
    die "$key: $non2xx responses were not 2xx; see $out"
  fi
}

# --- In-process cache operations ---------------------------------------

echo "== In-process cache operations (build/bench_cache)"
bench_cache_output=""
if [ -x "$bench_cache" ]; then
  bench_cache_output=$(timeout 300 "$bench_cache" 2>"$work/bench_cache.stderr") ||
    die "$bench_cache failed with status $?; its stderr is in $work/bench_cache.stderr"
  if [ -s "$work/bench_cache.stderr" ]; then
    echo "  bench_cache wrote $(wc -l <"$work/bench_cache.stderr") lines to stderr, the first:"
    head -n 1 "$work/bench_cache.stderr" | cut -c1-300 | sed 's/^/    /'
  fi
  if [ -n "$bench_cache_output" ]; then
    echo "$bench_cache_output" | sed 's/^/  /'
  else
    bench_cache_output="(bench_cache printed no results)"
    echo "  $bench_cache_output"
  fi
else
  bench_cache_output="(not built: $bench_cache is missing)"
  echo "  $bench_cache_output"
fi

# --- Upstream and proxies ------------------------------------------------

echo "== Starting the fake upstream"
python3 "$root/bench/upstream.py" "$work/upstream.port" >"$work/upstream.log" 2>&1 &
upstream_pid=$!
started_pids+=("$upstream_pid")
for i in $(seq 100); do
  [ -s "$work/upstream.port" ] && break
  kill -0 "$upstream_pid" 2>/dev/null || { cat "$work/upstream.log" >&2; die "fake upstream exited during startup"; }
  sleep 0.1
done
[ -s "$work/upstream.port" ] || die "fake upstream did not start within 10 s (see $work/upstream.log)"
upstream_port=$(cat "$work/upstream.port")
echo "  listening on 127.0.0.1:$upstream_port"

agentnet_port=$(free_port)
nginx_port=$(free_port)
nginx_prefix=$work/nginx
mkdir -p "$nginx_prefix/tmp" "$work/agentnet"
if [ "$(id -u)" -eq 0 ]; then
  # Workers would otherwise run as nobody and could not write the cache here.
  nginx_user_line="user root;"
else
  nginx_user_line="# not root: workers keep the current user"
fi

agentnet_pid=""
nginx_pid=""

start_agentnet() {
  local access_log=$1 log=$work/agentnet-access-log-$1.log
  "$agentnet" serve --listen "127.0.0.1:$agentnet_port" --upstream "http://127.0.0.1:$upstream_port/v1" \
    --data-dir "$work/agentnet" --threads "$threads" --access-log "$access_log" >"$log" 2>&1 &
  agentnet_pid=$!
  started_pids+=("$agentnet_pid")
  wait_ready agentnet "$agentnet_pid" "http://127.0.0.1:$agentnet_port/healthz" "$log"
}

start_nginx() {
  local access_log=$1 log_directive=off conf=$nginx_prefix/nginx.conf
  # nginx accepts buffer= only after a format name, and combined is its default format.
  [ "$access_log" = on ] && log_directive="$nginx_prefix/access.log combined buffer=64k flush=1s"
  sed -e "s|@PREFIX@|$nginx_prefix|g" -e "s|@PORT@|$nginx_port|g" \
    -e "s|@UPSTREAM_PORT@|$upstream_port|g" -e "s|@WORKERS@|$threads|g" \
    -e "s|@USER_LINE@|$nginx_user_line|g" -e "s|@ACCESS_LOG@|$log_directive|g" \
    "$root/bench/nginx.conf.template" >"$conf"
  if ! nginx -t -q -p "$nginx_prefix" -e "$nginx_prefix/error.log" -c "$conf" >"$nginx_prefix/test.log" 2>&1; then
    cat "$nginx_prefix/test.log" "$nginx_prefix/error.log" >&2 2>/dev/null || true
    die "nginx rejected $conf"
  fi
  nginx -p "$nginx_prefix" -e "$nginx_prefix/error.log" -c "$conf" -g 'daemon off;' \
    >"$nginx_prefix/stdout.log" 2>&1 &
  nginx_pid=$!
  started_pids+=("$nginx_pid")
  wait_ready nginx "$nginx_pid" "http://127.0.0.1:$nginx_port/" "$nginx_prefix/error.log"
}

stop_proxies() {
  stop_process "$agentnet_pid"
  forget_pid "$agentnet_pid"
  stop_process "$nginx_pid"
  forget_pid "$nginx_pid"
}

# Prints the gateway's cache hit counter from /metrics.
agentnet_hits() {
  curl -s --max-time 5 "http://127.0.0.1:$agentnet_port/metrics" |
    awk '/^agentnet_cache_requests_total\{cache="responses",result="hit"\}/ { print $2 }'
}

declare -A access_log_lines agentnet_hit_count
for config in "${configs[@]}"; do
  echo "== Access logs $config: agentnet --threads $threads, nginx worker_processes $threads," \
    "wrk -t1 -c$connections -d${duration}s --latency"
  start_agentnet "$config"
  start_nginx "$config"
  check_warm agentnet "$agentnet_port" X-AgentNet-Cache hit "$config"
  check_warm nginx "$nginx_port" X-Cache-Status HIT "$config"
  for round in $(seq "$rounds"); do
    for proxy in "${proxies[@]}"; do
      if [ "$proxy" = agentnet ]; then
        run_wrk "$config $proxy $round" "$agentnet_port" "$agentnet_pid"
      else
        run_wrk "$config $proxy $round" "$nginx_port" "$nginx_pid"
      fi
    done
  done
  agentnet_hit_count[$config]=$(agentnet_hits)
  stop_proxies
  if [ "$config" = on ]; then
    # Both proxies flush their buffered access logs when they stop.
    access_log_lines[agentnet]=$(grep -c '"msg":"access"' "$work/agentnet-access-log-on.log" || true)
    access_log_lines[nginx]=$(wc -l <"$nginx_prefix/access.log")
  fi
done

calls=$(curl -s --max-time 5 "http://127.0.0.1:$upstream_port/bench/calls") ||
  die "could not read the call count of the fake upstream"
chat_calls=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["chat_completions"])' "$calls")

# --- Summary ---------------------------------------------------------------

# Prints the round of PROXY in CONFIG with the highest requests/s.
best_round() {
  local config=$1 proxy=$2 best=1 round
  for round in $(seq "$rounds"); do
    if awk -v a="${rps[$config $proxy $round]}" -v b="${rps[$config $proxy $best]}" 'BEGIN { exit !(a > b) }'; then
      best=$round
    fi
  done
  echo "$best"
}

ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
}

echo
echo "== Summary: best of $rounds rounds per proxy, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $threads online CPUs"
echo "in-process cache operations:"
echo "$bench_cache_output" | sed 's/^/  /'
echo
echo "| access log | proxy | req/s | p50 ms | p99 ms | CPU us/req |"
echo "|---|---|---:|---:|---:|---:|"
for config in "${configs[@]}"; do
  a="$config agentnet $(best_round "$config" agentnet)"
  n="$config nginx $(best_round "$config" nginx)"
  printf '| %s | agentnet | %.0f | %.3f | %.3f | %.1f |\n' "$config" "${rps[$a]}" "${p50[$a]}" "${p99[$a]}" "${cpu_us[$a]}"
  printf '| %s | nginx | %.0f | %.3f | %.3f | %.1f |\n' "$config" "${rps[$n]}" "${p50[$n]}" "${p99[$n]}" "${cpu_us[$n]}"
  printf '| %s | **agentnet / nginx** | **%s** | **%s** | **%s** | **%s** |\n' "$config" \
    "$(ratio "${rps[$a]}" "${rps[$n]}")" "$(ratio "${p50[$a]}" "${p50[$n]}")" \
    "$(ratio "${p99[$a]}" "${p99[$n]}")" "$(ratio "${cpu_us[$a]}" "${cpu_us[$n]}")"
done
echo "A req/s ratio above 1 favors agentnet; a latency or CPU ratio below 1 favors it."
for key in "${!socket_errors[@]}"; do
  [ "${socket_errors[$key]}" = none ] || echo "wrk socket errors in run '$key': ${socket_errors[$key]}"
done
echo

for config in "${configs[@]}"; do
  sent=0
  for round in $(seq "$rounds"); do
    sent=$((sent + total_requests[$config agentnet $round]))
  done
  echo "agentnet cache hits with access logs $config: ${agentnet_hit_count[$config]:-unknown}" \
    "(wrk completed $sent requests, plus warm-up requests)"
done
echo "access log lines written: agentnet ${access_log_lines[agentnet]}, nginx ${access_log_lines[nginx]}"
echo "fake upstream chat completion calls: $chat_calls (expected 2, one per proxy)"
if [ "$chat_calls" != 2 ]; then
  die "the upstream was called $chat_calls times, so some benchmark requests were not cache hits"
fi
