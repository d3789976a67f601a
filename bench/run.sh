#!/usr/bin/env bash
# bench/run.sh: mounttop's benchmark (issues 2 and 12): the scan against a
# floor scanner, fuser -m and lsof +f on issue 12's three shapes at half
# and full size, the interactive view's idle cost, and the Go benchmarks
# (revoke, staged unmount, TUI refresh); ONE table at the end.
#
#   sudo bench/run.sh                       # every shape, both sizes, 5 rounds; about 15-25 minutes
#   sudo SIZES=small bench/run.sh           # quick: issue 2's small workload, 3 rounds, view idle 10s; under 2 minutes
#   sudo SIZES=mixed REPS=3 bench/run.sh    # one size
#
# Sizes (bench/workload): mixed-half, mixed (2,000 sleep/bash/python3/Go
# holders, 200,000 fds, 50 mounts), fat-half, fat (10 x 19,000 fds),
# thin-half, thin (20,000 sleeps x 5 fds); small and large are issue 2's.
# Other knobs: REPS (rounds per tool), VIEW (sizes at which the view idles;
# default mixed, or the last size), VIEW_IDLE (60s), VIEW_KEYS (5), WARMUP (1),
# VIEW_ONLY=1 (only the view, at each size in SIZES: SIZES=mixed VIEW=mixed VIEW_ONLY=1),
# SCAN_SIZES (sizes for the in-process BenchmarkScan; default none),
# GOBENCH=0 to skip the Go benchmarks.
#
# Each size: the generator enters a pid and mount namespace of its own
# (private propagation, its own /proc), mounts the tmpfs mounts, starts the
# holders, times the five commands alternating within one run, checks
# their answers agree with the plan, and tears everything down (every
# holder killed by pid and reaped, every mount unmounted; the namespaces
# die with it). Nothing is mounted in the machine's own namespace.
#
# Output: on stdout, and kept in bench/results/<time>.txt (+ .json).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if [[ $(id -u) -ne 0 ]]; then
	echo "run.sh: must run as root (the workload mounts tmpfs in a private namespace): sudo $0" >&2
	exit 2
fi
for need in fuser:psmisc lsof:lsof /usr/bin/time:time; do
	if ! command -v "${need%%:*}" >/dev/null; then
		echo "run.sh: installing ${need#*:} for ${need%%:*}" >&2
		apt-get install -y "${need#*:}" >/dev/null
	fi
done

sizes=${SIZES:-mixed-half,mixed,fat-half,fat,thin-half,thin}
if [[ $sizes == small ]]; then
	reps=${REPS:-3} view_idle=${VIEW_IDLE:-10s} view_keys=${VIEW_KEYS:-2} gobench=${GOBENCH:-0}
else
	reps=${REPS:-5} view_idle=${VIEW_IDLE:-60s} view_keys=${VIEW_KEYS:-5} gobench=${GOBENCH:-1}
fi
view=${VIEW:-}
if [[ -z $view ]]; then
	if [[ ,$sizes, == *,mixed,* ]]; then view=mixed; else view=${sizes##*,}; fi
fi
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/results
txt=bench/results/$stamp.txt
json=bench/results/$stamp.json

tmp=$(mktemp -d /tmp/mounttop-benchbin.XXXXXX)
gen_pid=
cleanup() {
	# Only the generator we started, by its pid: it passes the signal on
	# to the process inside the namespace, which tears down; its holders
	# die with it in any case (Pdeathsig).
	if [[ -n $gen_pid ]] && kill -0 "$gen_pid" 2>/dev/null; then
		kill -TERM "$gen_pid" 2>/dev/null || true
		wait "$gen_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$tmp/mounttop" ./cmd/mounttop
go build -o "$tmp/workload" ./bench/cmd/workload
go build -o "$tmp/floor" ./bench/cmd/floor

{
	echo "# mounttop benchmark, $stamp"
	echo
	echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- inspect cmd 2>/dev/null || echo ' (+ uncommitted changes in inspect/ or cmd/)')"
	echo "kernel $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(free -m | awk '/^Mem:/ {print $2}') MiB RAM"
	echo "$(go version); $(fuser -V 2>&1 | head -1); lsof $(lsof -v 2>&1 | sed -n 's/^ *revision: //p' | head -1)"
	echo "fd limits: ulimit -Hn $(ulimit -Hn), fs.file-max $(cat /proc/sys/fs/file-max), fs.nr_open $(cat /proc/sys/fs/nr_open); kernel.pid_max $(cat /proc/sys/kernel/pid_max)"
	echo "python3 for the mixed shape: $( (/usr/bin/python3 --version || python3 --version) 2>&1 | head -1)"
} | tee "$txt"

status=0
"$tmp/workload" -size "$sizes" -reps "$reps" -warmup "${WARMUP:-1}" -mounttop "$tmp/mounttop" -floor "$tmp/floor" \
	-view "$view" -view-idle "$view_idle" -view-keys "$view_keys" ${VIEW_ONLY:+-view-only} -out "$json" > >(tee -a "$txt") 2>&1 &
gen_pid=$!
wait "$gen_pid" || status=$?
gen_pid=

# Revoke at kill speed (issue 12 point 3): staged close vs fuser -km + umount, 300/1,000/2,000 holders.
go build -o "$tmp/revokebench" ./bench/cmd/revokebench && "$tmp/revokebench" -holders "${REVOKE_HOLDERS:-300,1000,2000}" -reps "${REVOKE_REPS:-3}" -mounttop "$tmp/mounttop" 2>&1 | tee -a "$txt" || status=1

# The scan alone, in process (no start-up, no JSON), with its CPU per scan.
if [[ -n ${SCAN_SIZES:-} ]]; then
	echo | tee -a "$txt"
	echo "## go test ./bench -bench 'Scan/^(${SCAN_SIZES//,/|})\$/^(list|holders)\$' (CPU per scan)" | tee -a "$txt"
	go test -run '^$' -bench 'Scan/^('"${SCAN_SIZES//,/|}"')$/^(list|holders)$' -benchtime "${SCANTIME:-10x}" -count 1 -timeout 20m ./bench 2>&1 |
		grep -E '^(Benchmark|ok|FAIL|---)' | tee -a "$txt" || status=1
fi

# Other engineers' benchmarks, when they exist: revoke throughput (issue 3,
# hundreds of holders), the staged unmount's fixed cost, the TUI's render
# CPU per refresh (issue 4). Each with a run length that suits it.
others=(
	"./unmount/revoke BenchmarkRevoke ${REVOKETIME:-400x}"
	"./unmount BenchmarkStagedIdle 20x"
	"./ui BenchmarkRefresh 1s"
)
if [[ $gobench == 1 ]]; then
	for spec in "${others[@]}"; do
		read -r pkg name btime <<<"$spec"
		if grep -qs "^func $name(" "$pkg"/*_test.go; then
			echo | tee -a "$txt"
			echo "## go test $pkg -bench '^$name\$' -benchtime $btime" | tee -a "$txt"
			go test -run '^$' -bench "^$name\$" -benchtime "$btime" -count 1 -timeout 5m "$pkg" 2>&1 |
				grep -E '^(Benchmark|ok|FAIL|---|\s)' | tee -a "$txt" || status=1
		fi
	done
fi
unknown=$(grep -rhoE --include='*_test.go' '^func Benchmark[A-Za-z0-9_]*' . | sed 's/^func //' | sort -u |
	grep -vxE 'BenchmarkScan|BenchmarkRevoke|BenchmarkStagedIdle|BenchmarkRefresh' || true)
if [[ -n $unknown ]]; then
	echo "not run here (add them to run.sh): $(echo $unknown)" | tee -a "$txt"
fi
# The one table: every size's commands with their ratios to the floor and
# to fuser -m, the view's idle cost, and each shape's growth.
{
	echo
	echo "## The table ($stamp; load average now $(cut -d' ' -f1-3 /proc/loadavg))"
	echo
	"$tmp/workload" -table "$json"
} | tee -a "$txt" || status=1
echo | tee -a "$txt"
echo "kept in $txt and $json" | tee -a "$txt"
exit "$status"
