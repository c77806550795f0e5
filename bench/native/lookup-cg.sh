#!/bin/sh
# Instructions, L1 data misses and mispredicted conditional branches per
# packet of the batched lookup alone (callgrind counting only run_passes() of
# bench/native/lookup_driver.cc; its branch predictor is a simple model, so
# the last figure compares code, it does not predict a CPU).
# Usage: bench/native/lookup-cg.sh DIR/SET TRACE   (environment as for the driver)
# Prints: SET TRACE Ir/packet D1-misses/packet mispredicts/packet
set -e
out=$(mktemp /tmp/lookup-cg.XXXXXX)
PASSES=1 valgrind --tool=callgrind --cache-sim=yes --branch-sim=yes --toggle-collect='*run_passes*' \
  --callgrind-out-file="$out" "${DRIVER:-/tmp/lookup_driver}" "$1" "$2" >/dev/null 2>&1 || { echo "$1 $2: driver failed"; rm -f "$out"; exit 1; }
n=$(( $(stat -L -c %s "$1.$2.want") / 4 ))
awk -v n="$n" -v s="$(basename "$1")" -v t="$2" '
  /^events:/ { for (i = 2; i <= NF; i++) ev[$i] = i - 1 }
  /^(summary|totals):/ { split($0, f, " "); ir = f[ev["Ir"] + 1]; d1 = f[ev["D1mr"] + 1] + f[ev["D1mw"] + 1]; bm = f[ev["Bcm"] + 1] }
  END { printf "%s %s %.0f %.2f %.2f\n", s, t, ir / n, d1 / n, bm / n }' "$out"
rm -f "$out"
