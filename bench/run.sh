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
# Then it runs the other Go benchmarks of the repository (revoke
# throughput, TUI refresh cost) if they exist.
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

# Other engineers' benchmarks (issue 3: revoke throughput; issue 4: CPU per
# TUI refresh), wherever they live outside bench/.
pkgs=$(grep -rl --include='*_test.go' -E '^func Benchmark' . | grep -v '^\./bench/' | xargs -r -n1 dirname | sort -u)
if [[ -n $pkgs ]]; then
	echo | tee -a "$txt"
	echo "## other benchmarks: $(echo $pkgs)" | tee -a "$txt"
	# shellcheck disable=SC2086
	go test -run '^$' -bench . -benchtime "${BENCHTIME:-1x}" -count 1 -timeout 5m $pkgs 2>&1 | tee -a "$txt" || status=1
fi
echo | tee -a "$txt"
echo "kept in $txt and $json" | tee -a "$txt"
exit "$status"
