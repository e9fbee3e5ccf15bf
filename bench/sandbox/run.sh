#!/usr/bin/env bash
# Sandbox benchmark: the start-up overhead of `agentnet sandbox run` at each
# level, next to the same programs run bare, under unshare(1) and under
# bubblewrap, in one run on this machine. `make bench` runs it after the
# embedding benchmark (bench/embed/run.sh).
#
# Two programs are timed: /bin/true, where nearly all the time is the
# sandbox's set-up and tear-down, and `/usr/bin/python3 -c pass`, a typical
# plugin interpreter that loads many files through the read-only binds.
# hyperfine runs every command with --shell=none (-N), so no shell start-up is
# timed, after SANDBOX_BENCH_WARMUP warm-up runs, for hyperfine's default of
# at least 3 seconds, but at least 20 and at most SANDBOX_BENCH_RUNS times (a
# command of 100 ms thus runs about 30 times). Each round runs hyperfine
# once per program over all of that program's commands, and even rounds run
# them in reverse order, so a change in the machine's load during the run
# does not always fall on the same commands. The summary pools the times of
# all rounds per command and reports their median and minimum.
#
# Back-to-back runs keep the CPUs awake and let the kernel reuse state from
# the previous run: an RCU grace period that a cgroup v1 attach or an
# unmount waits for may already have passed. A plugin call usually comes
# after a pause, so a third group runs /bin/true bare, under bwrap and under
# `agentnet sandbox run` at the sandboxed level with `sleep 0.2` before
# each run (hyperfine --prepare, not timed).
#
# The commands, for /bin/true:
# - bare: /bin/true.
# - unshare: `unshare --user --map-root-user --pid --fork --net --ipc --uts
#   --mount /bin/true`, namespaces alone, with no new root.
# - bwrap: bubblewrap set up for isolation comparable to the sandboxed level:
#   new user, pid, network, ipc, uts, mount and cgroup namespaces; a new root
#   that contains read-only binds of the system directories that `agentnet
#   sandbox levels --json` lists for sandboxed (host symlinks such as
#   /bin -> usr/bin recreated as symlinks), a fresh /proc, bwrap's minimal
#   /dev and a tmpfs workdir at /work with /tmp pointing into it; the root
#   remounted read-only; a new session; every capability dropped; the
#   environment cleared except PATH, HOME and TMPDIR.
# - agentnet --version: the start of the agentnet process alone, which
#   every agentnet row below includes.
# - agentnet LEVEL and agentnet LEVEL --json: `agentnet sandbox run --data-dir
#   TMP/data --level LEVEL [--json] -- /bin/true` for each level in
#   SANDBOX_BENCH_LEVELS.
#   Beyond what bwrap does, agentnet installs a seccomp filter, sets
#   rlimits, creates and removes a per-run cgroup, and with --json captures
#   the output and prints a JSON report.
# The python3 commands are the same, without unshare, --version and the
# unrestricted level. Before timing, every command runs once and must exit with status 0
# (and report exit_code 0 with --json), or the script stops.
#
# Environment (defaults in brackets):
#   BUILD                  build directory that contains agentnet [build]
#   SANDBOX_BENCH_RUNS     maximum timed runs per command and round, 20 to 1000 [100]
#   SANDBOX_BENCH_WARMUP   warm-up runs per command and round, 0 to 100 [5]
#   SANDBOX_BENCH_ROUNDS   rounds, 1 to 5 [2]
#   SANDBOX_BENCH_IDLE_RUNS  timed runs per command and round after a pause,
#                          0 (no such group) to 200 [20]
#   SANDBOX_BENCH_LEVELS   levels to time agentnet at, separated by spaces;
#                          empty times only bare, unshare and bwrap
#                          [unrestricted sandboxed restricted minimal]
#   SANDBOX_BENCH_KEEP=1   keep the temporary directory (hyperfine's JSON)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build_dir=$root/${BUILD:-build}
agentnet=$build_dir/agentnet
runs=${SANDBOX_BENCH_RUNS:-100}
warmup=${SANDBOX_BENCH_WARMUP:-5}
rounds=${SANDBOX_BENCH_ROUNDS:-2}
idle_runs=${SANDBOX_BENCH_IDLE_RUNS:-20}
levels=${SANDBOX_BENCH_LEVELS-unrestricted sandboxed restricted minimal}
python=/usr/bin/python3
workdir=/work
sandbox_path=/usr/local/bin:/usr/bin:/bin

die() {
  echo "bench-sandbox: $*" >&2
  exit 1
}

check_range() {
  local name=$1 value=$2 min=$3 max=$4
  if ! [[ $value =~ ^[0-9]+$ ]] || [ "$value" -lt "$min" ] || [ "$value" -gt "$max" ]; then
    die "invalid $name '$value': expected an integer from $min to $max"
  fi
}

check_range SANDBOX_BENCH_RUNS "$runs" 20 1000
check_range SANDBOX_BENCH_WARMUP "$warmup" 0 100
check_range SANDBOX_BENCH_ROUNDS "$rounds" 1 5
check_range SANDBOX_BENCH_IDLE_RUNS "$idle_runs" 0 200
for level in $levels; do
  case $level in
    unrestricted | sandboxed | restricted | minimal) ;;
    *) die "invalid level '$level' in SANDBOX_BENCH_LEVELS: expected unrestricted, sandboxed, restricted or minimal" ;;
  esac
done

missing=()
for tool in hyperfine bwrap unshare "$python"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "bench-sandbox: missing tools: ${missing[*]}" >&2
  echo "bench-sandbox: install them (Debian packages hyperfine, bubblewrap, util-linux, python3) with:" >&2
  echo "  sudo $root/scripts/install-deps.sh --bench" >&2
  exit 1
fi
[ -x "$agentnet" ] || die "$agentnet not found: build it first with 'make' (or run 'make bench')"

work=$(mktemp -d /tmp/agentnet-bench-sandbox.XXXXXX)
cleanup() {
  local status=$?
  if [ "$status" -ne 0 ] || [ "${SANDBOX_BENCH_KEEP:-0}" = 1 ]; then
    echo "bench-sandbox: hyperfine results and logs kept in $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The sandboxed level's system directories, from the binary being measured.
"$agentnet" sandbox levels --json >"$work/levels.json" 2>"$work/levels.log" ||
  die "agentnet sandbox levels --json failed: $(tail -n 3 "$work/levels.log")"
system_dirs=$("$python" -c '
import json, sys
levels = {entry["level"]: entry for entry in json.load(open(sys.argv[1]))}
print(" ".join(levels["sandboxed"]["system_dirs"]))' "$work/levels.json") ||
  die "no system_dirs for the sandboxed level in the output of agentnet sandbox levels --json"
[ -n "$system_dirs" ] || die "agentnet sandbox levels --json lists no system directories for sandboxed"

# bwrap's options, in the order bwrap applies them. --unshare-all only tries
# a user namespace, so --unshare-user makes it a requirement.
bwrap_args="--unshare-all --unshare-user --die-with-parent --new-session"
for dir in $system_dirs; do
  if [ -L "$dir" ]; then
    bwrap_args+=" --symlink $(readlink "$dir") $dir"
  elif [ -d "$dir" ]; then
    bwrap_args+=" --ro-bind $dir $dir"
  fi
done
bwrap_args+=" --proc /proc --dev /dev --tmpfs $workdir --dir $workdir/tmp --symlink $workdir/tmp /tmp"
bwrap_args+=" --remount-ro / --chdir $workdir --clearenv --setenv PATH $sandbox_path"
bwrap_args+=" --setenv HOME $workdir --setenv TMPDIR $workdir/tmp --cap-drop ALL"

# agentnet records each run in DIR/events.jsonl, so DIR is in the temporary
# directory rather than the default ./var/agentnet.
agentnet_args="--data-dir $work/data"

# Commands are stored as words without quotes: hyperfine -N splits them the
# same way the checks below do, and no argument contains a space.
names=()
commands=()
add_command() {
  names+=("$1")
  commands+=("$2")
}

true_first=${#names[@]}
add_command "true bare" "/bin/true"
add_command "true unshare" "unshare --user --map-root-user --pid --fork --net --ipc --uts --mount /bin/true"
add_command "true bwrap" "bwrap $bwrap_args /bin/true"
[ -n "$levels" ] && add_command "true agentnet --version" "$agentnet --version"
for level in $levels; do
  add_command "true agentnet $level" "$agentnet sandbox run $agentnet_args --level $level -- /bin/true"
  add_command "true agentnet $level --json" "$agentnet sandbox run $agentnet_args --level $level --json -- /bin/true"
done
python_first=${#names[@]}
add_command "python3 bare" "$python -c pass"
add_command "python3 bwrap" "bwrap $bwrap_args $python -c pass"
for level in $levels; do
  [ "$level" = unrestricted ] && continue
  add_command "python3 agentnet $level" "$agentnet sandbox run $agentnet_args --level $level -- $python -c pass"
  add_command "python3 agentnet $level --json" "$agentnet sandbox run $agentnet_args --level $level --json -- $python -c pass"
done
idle_first=${#names[@]}
if [ "$idle_runs" -gt 0 ]; then
  add_command "idle bare" "/bin/true"
  add_command "idle bwrap" "bwrap $bwrap_args /bin/true"
  for level in $levels; do
    [ "$level" = sandboxed ] && add_command "idle agentnet sandboxed" "$agentnet sandbox run $agentnet_args -- /bin/true"
  done
fi

# Runs each command once. It must exit 0, and a JSON report must contain exit_code 0.
echo "== Checking that every command runs"
for i in "${!names[@]}"; do
  read -ra words <<<"${commands[$i]}"
  status=0
  timeout --kill-after=5 60 "${words[@]}" >"$work/check.out" 2>"$work/check.err" </dev/null || status=$?
  [ "$status" -ne 124 ] || die "'${names[$i]}' timed out after 60 s: ${commands[$i]}"
  if [ "$status" -ne 0 ]; then
    die "'${names[$i]}' exited with status $status: ${commands[$i]}: $(tail -n 3 "$work/check.err")"
  fi
  if [[ ${names[$i]} == *--json ]]; then
    "$python" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])).get("exit_code") != 0)' "$work/check.out" ||
      die "'${names[$i]}' printed no JSON report with exit_code 0: $(head -c 400 "$work/check.out")"
  fi
  echo "  ok: ${names[$i]}"
done

# Runs hyperfine over commands FIRST to LAST-1, reversed when REVERSE is 1.
# MODE is hot (back to back) or idle (after a 0.2 s pause).
run_hyperfine() {
  local first=$1 last=$2 reverse=$3 json=$4 mode=$5 i
  local args=(-N --style basic --time-unit millisecond --export-json "$json")
  # A command that hangs would stop hyperfine, which has no timeout of its
  # own, so the whole call gets 0.2 s per run (0.5 s after a pause) plus 60 s.
  local limit
  if [ "$mode" = idle ]; then
    args+=(--warmup 1 --runs "$idle_runs" --prepare "sleep 0.2")
    limit=$((60 + (last - first) * (idle_runs + 1) / 2))
  else
    args+=(--warmup "$warmup" --min-runs 20 --max-runs "$runs")
    limit=$((60 + (last - first) * (runs + warmup) / 5))
  fi

  local order=()
  for ((i = first; i < last; i++)); do
    order+=("$i")
  done
  if [ "$reverse" = 1 ]; then
    for ((i = ${#order[@]} - 1; i >= 0; i--)); do
      args+=(-n "${names[${order[$i]}]}" "${commands[${order[$i]}]}")
    done
  else
    for i in "${order[@]}"; do
      args+=(-n "${names[$i]}" "${commands[$i]}")
    done
  fi

  local status=0 listed
  listed=$(printf "'%s' " "${names[@]:$first:$((last - first))}")
  timeout --kill-after=10 "$limit" hyperfine "${args[@]}" </dev/null || status=$?
  [ "$status" -ne 124 ] || die "hyperfine timed out after $limit s, so one of these commands hangs: $listed"
  [ "$status" -eq 0 ] || die "hyperfine failed with status $status on one of: $listed"
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
for round in $(seq "$rounds"); do
  reverse=$(((round + 1) % 2))
  echo "== Round $round of $rounds: /bin/true"
  run_hyperfine "$true_first" "$python_first" "$reverse" "$work/true-$round.json" hot
  echo "== Round $round of $rounds: python3 -c pass"
  run_hyperfine "$python_first" "$idle_first" "$reverse" "$work/python3-$round.json" hot
  if [ "$idle_first" -lt "${#names[@]}" ]; then
    echo "== Round $round of $rounds: /bin/true after a 0.2 s pause"
    run_hyperfine "$idle_first" "${#names[@]}" "$reverse" "$work/idle-$round.json" idle
  fi
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "== Summary: medians over $rounds round(s), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) online CPUs," \
  "$(uname -sr), load average $load_start at the start and $load_end at the end"
echo "tools: $(bwrap --version), $(hyperfine --version), $("$python" --version)"
echo "bwrap options: $bwrap_args"
echo
"$python" - "$work" <<'PY'
import glob, json, os, statistics, sys

# Pool every round's times per command. Round 1 runs the commands in the
# order they were added, so reading it first keeps that order.
times = {}
paths = sorted(glob.glob(os.path.join(sys.argv[1], "*-*.json")),
               key=lambda path: path.rsplit("-", 1)[1] != "1.json")
for path in paths:
    for result in json.load(open(path))["results"]:
        times.setdefault(result["command"], []).extend(result["times"])

print("| program | runner | runs | median ms | min ms | / bare | / bwrap |")
print("|---|---|---:|---:|---:|---:|---:|")
groups = (("true", "/bin/true"), ("python3", "python3 -c pass"),
          ("idle", "/bin/true after 0.2 s idle"))
for program, label in groups:
    if f"{program} bare" not in times:
        continue
    bare = statistics.median(times[f"{program} bare"])
    bwrap = statistics.median(times[f"{program} bwrap"])
    for name, samples in times.items():
        if name.split(" ", 1)[0] != program:
            continue
        median = statistics.median(samples)
        print(f"| {label} | {name.split(' ', 1)[1]} | {len(samples)} | {median * 1e3:.2f} | {min(samples) * 1e3:.2f} | "
              f"{median / bare:.2f} | {median / bwrap:.2f} |")
PY
