#!/usr/bin/env bash
# detect-live.sh measures what the detectors cost on the request path:
# read-by-id throughput of `phivault serve` with the detectors on (the
# default) against the same server with -detect-off, in alternating rounds,
# each configuration on its own data folder (a server with the detectors
# would otherwise first catch up on the entries the other run wrote).
#
#   bench/detect-live.sh [ROUNDS] [SECONDS] [CONNS]    (defaults 5 8 64)
#
# It prints one line per round and the median of the on/off ratios.
# docs/PERFORMANCE.md ("Detectors") records its figures.
set -euo pipefail

rounds=${1:-5}
secs=${2:-8}
conns=${3:-64}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/phivault" "$root/cmd/phivault"
pv=$work/phivault
printf 'detect-live bench passphrase\n' >"$work/pass"
export PHIVAULT_PASSPHRASE_FILE=$work/pass

for cfg in on off; do
	"$pv" init -data "$work/$cfg" -passphrase-file "$work/pass" \
		-audit-witness-file "$work/$cfg.witness" >"$work/$cfg.init"
	awk '/Admin API token/ {getline; print $1}' "$work/$cfg.init" >"$work/$cfg.token"
done

port=18443
run() { # run CFG: serve CFG's folder, bench it, print req/s
	local cfg=$1 flags=()
	[[ $cfg == off ]] && flags=(-detect-off)
	"$pv" serve -data "$work/$cfg" -audit-witness-file "$work/$cfg.witness" \
		-addr "127.0.0.1:$port" "${flags[@]}" >"$work/$cfg.log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do
		curl -skf "https://127.0.0.1:$port/fhir/metadata" >/dev/null 2>&1 && break
		sleep 0.1
	done
	sleep 3 # settle
	PHIVAULT_TOKEN_FILE=$work/$cfg.token "$pv" bench -url "https://127.0.0.1:$port/fhir" \
		-cacert "$work/$cfg/tls/cert.pem" -mode read -d "${secs}s" -c "$conns" 2>/dev/null |
		sed -n 's/.* rps=\([0-9]*\).*/\1/p'
	kill "$pid"
	wait "$pid" 2>/dev/null || true
}

ratios=()
printf 'round\ton req/s\toff req/s\ton/off\n'
for r in $(seq "$rounds"); do
	on=$(run on)
	off=$(run off)
	ratio=$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.2f", a / b }')
	ratios+=("$ratio")
	printf '%d\t%s\t%s\t%s\n' "$r" "$on" "$off" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n |
	awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "median on/off: %.2f\n", m }'
