#!/bin/sh
# Usage: check_demo.sh <demo binary> [demo flags...]
# Runs the demo for a short configuration and checks its summary line: every task sent was
# completed, failed, dropped or handed back (lost=0), and the pool scaled up under the burst and
# back down afterwards.
set -eu
demo=$1
shift
status=0
out=$("$demo" "$@") || status=$?
printf '%s\n' "$out"
[ "$status" -eq 0 ] || { echo "check_demo: demo exited with $status" >&2; exit 1; }
line=$(printf '%s\n' "$out" | grep '^summary: ' | tail -n 1)
[ -n "$line" ] || { echo "check_demo: no summary line" >&2; exit 1; }
case $line in
  *" lost=0 OK"*) ;;
  *) echo "check_demo: accounting mismatch: $line" >&2; exit 1 ;;
esac
# sent = completed + failed + dropped + left, recomputed here from the numbers themselves.
printf '%s\n' "$line" | awk '{
  for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+=-?[0-9]+$/) { split($i, kv, "="); v[kv[1]] = kv[2] }
  if (v["sent"] + 0 == 0) { print "check_demo: nothing sent" > "/dev/stderr"; exit 1 }
  if (v["sent"] != v["completed"] + v["failed"] + v["dropped"] + v["left"]) {
    print "check_demo: sums differ" > "/dev/stderr"; exit 1 }
}'
# The "want" column (6th) went above its first value and came back down by the end.
printf '%s\n' "$out" | awk '
  $1 ~ /^[0-9.]+s$/ && $6 ~ /^-?[0-9]+$/ { n++; w[n] = $6; if ($6 > max) max = $6 }
  END {
    if (n < 3) { print "check_demo: timeline too short" > "/dev/stderr"; exit 1 }
    if (max <= w[1]) { print "check_demo: never scaled up" > "/dev/stderr"; exit 1 }
    if (w[n] >= max) { print "check_demo: never scaled back down" > "/dev/stderr"; exit 1 }
  }'
echo "check_demo: ok"
