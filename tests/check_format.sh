#!/bin/sh
# The tree's C sources are formatted with the checked-in .clang-format (clang-format 14): fails
# listing each file that `clang-format` would change. Skips (77) when clang-format is absent.
# Usage: check_format.sh SOURCE_ROOT
root=$1
command -v clang-format >/dev/null 2>&1 || { echo "clang-format not installed"; exit 77; }
cd "$root" || exit 1
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    files=$(git ls-files 'src/*.[ch]' 'include/*.h' 'tests/*.[ch]' 'examples/*.[ch]' \
        'benchmarks/*.[ch]' 'tools/*.[ch]')
else
    files=$(find src include tests examples benchmarks tools -name '*.[ch]' 2>/dev/null)
fi
bad=0
for f in $files; do
    [ -f "$f" ] || continue
    if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then
        echo "needs formatting: $f (run: clang-format -i $f)"
        bad=$((bad + 1))
    fi
done
echo "format: $(echo "$files" | wc -w) files checked, $bad need formatting"
[ "$bad" -eq 0 ]
