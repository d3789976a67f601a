#!/usr/bin/env bash
# bench/run.sh: mounttop's benchmark against fuser -m and lsof +f (issue 2).
#
#   sudo bench/run.sh                  # both sizes, 9 rounds each
#   sudo SIZES=small REPS=5 bench/run.sh
#
# Builds mounttop and the workload generator, then, for each size, the
# generator enters a private mount namespace of its own, mounts the tmpfs
# mounts, starts the holders, times the four tools alternating within one
# run, checks their answers agree, and tears everything down (every holder
# killed by pid and reaped, every mount unmounted; the namespace dies with
# it). Nothing is mounted in the machine's own namespace.
#
# Then the scan alone in process (CPU per scan, at each size), and the other
# Go benchmarks of the repository (revoke throughput, TUI refresh cost) if
# they exist.
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

sizes=${SIZES:-small,large}
reps=${REPS:-9}
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

{
	echo "# mounttop benchmark, $stamp"
	echo
	echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- inspect cmd 2>/dev/null || echo ' (+ uncommitted changes in inspect/ or cmd/)')"
	echo "kernel $(uname -r), $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(free -m | awk '/^Mem:/ {print $2}') MiB RAM"
	echo "$(go version); $(fuser -V 2>&1 | head -1); lsof $(lsof -v 2>&1 | sed -n 's/^ *revision: //p' | head -1)"
	echo "fd limits: ulimit -Hn $(ulimit -Hn), fs.file-max $(cat /proc/sys/fs/file-max), fs.nr_open $(cat /proc/sys/fs/nr_open)"
} | tee "$txt"

status=0
"$tmp/workload" -size "$sizes" -reps "$reps" -mounttop "$tmp/mounttop" -out "$json" > >(tee -a "$txt") 2>&1 &
gen_pid=$!
wait "$gen_pid" || status=$?
gen_pid=

# Revoke at kill speed (issue 12 point 3): staged close vs fuser -km + umount, 300/1,000/2,000 holders.
go build -o "$tmp/revokebench" ./bench/cmd/revokebench && "$tmp/revokebench" -holders "${REVOKE_HOLDERS:-300,1000,2000}" -reps "${REVOKE_REPS:-3}" -mounttop "$tmp/mounttop" 2>&1 | tee -a "$txt" || status=1

# The scan alone, in process (no start-up, no JSON), with its CPU per scan:
# the scanning part of a TUI refresh at each workload size (issue 4).
echo | tee -a "$txt"
echo "## go test ./bench -bench 'Scan/(small|large)/(list|holders)\$' (CPU per scan)" | tee -a "$txt"
go test -run '^$' -bench 'Scan/('"${sizes//,/|}"')/(list|holders)$' -benchtime "${SCANTIME:-10x}" -count 1 -timeout 10m ./bench 2>&1 |
	grep -E '^(Benchmark|ok|FAIL|---)' | tee -a "$txt" || status=1

# Other engineers' benchmarks, when they exist: revoke throughput (issue 3,
# hundreds of holders), the staged unmount's fixed cost, the TUI's render
# CPU per refresh (issue 4). Each with a run length that suits it.
others=(
	"./unmount/revoke BenchmarkRevoke ${REVOKETIME:-400x}"
	"./unmount BenchmarkStagedIdle 20x"
	"./ui BenchmarkRefresh 1s"
)
for spec in "${others[@]}"; do
	read -r pkg name btime <<<"$spec"
	if grep -qs "^func $name(" "$pkg"/*_test.go; then
		echo | tee -a "$txt"
		echo "## go test $pkg -bench '^$name\$' -benchtime $btime" | tee -a "$txt"
		go test -run '^$' -bench "^$name\$" -benchtime "$btime" -count 1 -timeout 5m "$pkg" 2>&1 |
			grep -E '^(Benchmark|ok|FAIL|---|\s)' | tee -a "$txt" || status=1
	fi
done
unknown=$(grep -rhoE --include='*_test.go' '^func Benchmark[A-Za-z0-9_]*' . | sed 's/^func //' | sort -u |
	grep -vxE 'BenchmarkScan|BenchmarkRevoke|BenchmarkStagedIdle|BenchmarkRefresh' || true)
if [[ -n $unknown ]]; then
	echo "not run here (add them to run.sh): $(echo $unknown)" | tee -a "$txt"
fi
echo | tee -a "$txt"
echo "kept in $txt and $json" | tee -a "$txt"
exit "$status"
