#!/usr/bin/env bash
# Whole-machine CPU profile of podtrail under a load, as a flamegraph SVG.
#
#   sudo scripts/profile.sh storm        # serial fork+exec of /bin/true (the bench's storm)
#   sudo scripts/profile.sh unshare      # two processes calling unshare(0) (the throughput load)
#
# Writes bench/profiles/<load>.svg and prints the top symbols. perf samples the cpu-clock
# software event (VMs here have no hardware counters) with DWARF call graphs, so the
# daemon's Rust frames resolve without frame pointers. Installs linux-perf (apt) and
# inferno (cargo) on first use. Extra arguments go to `podtrail run`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
load="${1:-}"; shift || true
case "$load" in storm|unshare) ;; *) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "profile.sh must run as root (perf -a, eBPF)" >&2; exit 1; }

command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q linux-perf >/dev/null
command -v inferno-flamegraph >/dev/null || cargo install --locked -q inferno
cargo build --release -q -p podtrail 2>&1 | grep -v '^warning: podtrail@' || true

out=bench/profiles; mkdir -p "$out"
work=$(mktemp -d); trap 'kill "$daemon" 2>/dev/null; wait "$daemon" 2>/dev/null; rm -rf "$work"' EXIT
target/release/podtrail run -o json --metrics-addr 127.0.0.1:0 --tail-socket "$work/tail.sock" \
  --timeline-path "$work/timeline.db" "$@" >/dev/null 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 600); do grep -q 'podtrail ready:' "$work/daemon.log" && break; sleep 0.1; done
grep -q 'podtrail ready:' "$work/daemon.log" || { cat "$work/daemon.log" >&2; exit 1; }

case "$load" in
  storm) workload=(bash -c 'for _ in $(seq 4000); do /bin/true; done') ;;
  unshare)
    gen='import ctypes,time
u=ctypes.CDLL(None,use_errno=True).unshare
end=time.time()+8
while time.time()<end:
    for _ in range(5000): u(0)'
    workload=(bash -c "python3 -c '$gen' & python3 -c '$gen' & wait") ;;
esac
echo "profile.sh: recording $load (perf record -a -e cpu-clock -F 499 --call-graph dwarf)" >&2
perf record -q -a -e cpu-clock -F 499 --call-graph dwarf,8192 -o "$work/perf.data" -- "${workload[@]}" >/dev/null 2>&1
perf script -i "$work/perf.data" 2>/dev/null | inferno-collapse-perf > "$work/folded"
inferno-flamegraph --title "podtrail, $load load, whole machine (cpu-clock)" < "$work/folded" > "$out/$load.svg"
echo "wrote $out/$load.svg" >&2
echo "top symbols (self time, whole machine):"
perf report -i "$work/perf.data" --no-children --sort comm,sym --percent-limit 1.5 --stdio -g none 2>/dev/null \
  | grep -v '^#' | grep -v '^$' | head -25
kill "$daemon"; wait "$daemon" 2>/dev/null || true
grep 'podtrail stopped' "$work/daemon.log" | sed 's/.*podtrail stopped: /daemon: /'
