#!/bin/sh
# Usage: check_header.sh "<cc command>" <include dir> <header>
# Compiles one public header on its own, pedantic C11 with warnings as errors, and as C++ if a
# C++ compiler is around, so that every header stands alone.
set -eu
cc=$1 inc=$2 hdr=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include <swarm/%s>\n#include <swarm/%s>\nint main(void) { return 0; }\n' "$hdr" "$hdr" \
    > "$tmp/t.c"
$cc -std=c11 -pedantic -Wall -Wextra -Werror -I"$inc" -c "$tmp/t.c" -o "$tmp/t.o"
if command -v c++ >/dev/null 2>&1; then
    cp "$tmp/t.c" "$tmp/t.cc"
    c++ -std=c++11 -pedantic -Wall -Wextra -Werror -I"$inc" -c "$tmp/t.cc" -o "$tmp/t2.o"
fi
echo "ok: swarm/$hdr compiles alone"
