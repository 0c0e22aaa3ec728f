#!/usr/bin/env bash
# Module graph of crates/core: which top-level module uses which, and the
# dependency cycles between them.
#
# An edge A -> B means a file of module A (src/A.rs or src/A/**) names
# `crate::B` outside a `//` comment (tests included: they are part of the
# module). A cycle is a strongly connected component of more than one
# module; the script prints each one with the edges that close it and exits
# 1 if there is any, so it can gate CI.
#
# Usage: scripts/module-graph.sh [--edges-only] [path/to/crates/core/src]
set -euo pipefail

edges_only=0
if [[ "${1:-}" == "--edges-only" ]]; then
    edges_only=1
    shift
fi
src="${1:-$(cd "$(dirname "$0")/.." && pwd)/crates/core/src}"
cd "$src"

edges=$(
    find . -name '*.rs' ! -name lib.rs | sort | while read -r file; do
        rel="${file#./}"
        from="${rel%%/*}"
        from="${from%.rs}"
        # Drop `//` comments (doc comments included).
        { sed -e 's#//.*$##' "$file" | grep -oE 'crate::[a-z_][a-z0-9_]*' || true; } \
            | sed -e 's#^crate::##' \
            | while read -r to; do
                if [[ "$to" != "$from" ]]; then
                    echo "$from $to"
                fi
            done
    done | sort | uniq -c | awk '{ print $2, $3, $1 }'
)

echo "# edges (from -> to: references)"
echo "$edges" | awk 'NF { printf "%-10s -> %-10s %s\n", $1, $2, $3 }'
if [[ $edges_only == 1 ]]; then
    exit 0
fi

echo "$edges" | awk '
NF {
    n[$1] = 1; n[$2] = 1
    r[$1, $2] = 1
    e[$1, $2] = 1
}
END {
    # Transitive closure (Floyd-Warshall); a dozen modules, cheap.
    for (k in n) for (i in n) if (r[i, k]) for (j in n) if (r[k, j]) r[i, j] = 1
    # Sorted module names for stable output.
    m = 0
    for (i in n) names[++m] = i
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++)
        if (names[j] < names[i]) { t = names[i]; names[i] = names[j]; names[j] = t }
    cycles = 0
    print "# cycles (strongly connected components of more than one module)"
    for (i = 1; i <= m; i++) {
        a = names[i]
        if (done[a]) continue
        comp = a; size = 1
        for (j = i + 1; j <= m; j++) {
            b = names[j]
            if (!done[b] && r[a, b] && r[b, a]) { comp = comp " " b; size++; done[b] = 1 }
        }
        done[a] = 1
        if (size > 1) {
            cycles++
            print "cycle: " comp
            split(comp, members, " ")
            for (x in members) for (y in members)
                if (e[members[x], members[y]])
                    print "    " members[x] " -> " members[y]
        }
    }
    if (cycles == 0) print "none"
    exit cycles > 0 ? 1 : 0
}'
