#!/bin/sh
# Usage: check_exports.sh <libswarm.so> <libswarm.map>
# Fails if the dynamic symbols the library defines differ from the names in the version script.
set -eu
lib=$1 map=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {sub(/@.*/, "", $3); print $3}' \
    | grep -v '^LIBSWARM_' | sort -u > "$tmp/exported"
sed 's,/\*.*\*/,,' "$map" | tr -d ' \t' | grep -E '^swarm_[A-Za-z0-9_]+;$' | tr -d ';' \
    | sort -u > "$tmp/listed"
if ! diff -u "$tmp/listed" "$tmp/exported"; then
    echo "exports differ from $map (- listed only, + exported only)" >&2
    exit 1
fi
echo "ok: $(wc -l < "$tmp/exported") exported symbols match the version script"
