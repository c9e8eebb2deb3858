#!/bin/sh
# Sum a results file written by the test runners and print the final line.
#
#   scripts/summary.sh FILE
#
# Each line of FILE is one runner's result:
#   NAME: P passed, F failed, S skipped
# Prints one row per runner, then the total alone on the last line:
#   N passed, N failed, N skipped
# Exits 1 if anything failed, or if no test ran at all.
set -eu
file=${1:?usage: summary.sh RESULTS_FILE}
[ -f "$file" ] || : >"$file"

awk '
BEGIN { p = 0; f = 0; s = 0; bad = 0 }
/^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed(, [0-9]+ skipped)?$/ {
    name = $1; sub(/:$/, "", name)
    rp = $2; rf = $4; rs = (NF >= 7) ? $6 : 0
    rows[++n] = sprintf("  %-16s %5d ok %5d failed %5d skipped%s", name, rp, rf, rs, rf > 0 ? "   <==" : "")
    p += rp; f += rf; s += rs
    next
}
NF > 0 { bad++; rows[++n] = sprintf("  unreadable result line: %s", $0) }
END {
    print ""
    print "Test runners:"
    for (i = 1; i <= n; i++) print rows[i]
    if (bad > 0) f += bad
    if (p + f == 0) {
        print "  no test ran: counted as a failure"
        f = 1
    }
    printf "%d passed, %d failed, %d skipped\n", p, f, s
    exit(f > 0 ? 1 : 0)
}' "$file"
