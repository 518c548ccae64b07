#!/usr/bin/env bash
# make gate-path: which of the project's files one request the gate lets
# through runs code in, and whether they are at most $MAX. It runs
# TestGatedRequestPath (gatepath_test.go) under coverage with one request
# and with two on one connection; the blocks whose counts grew are the
# second request's way.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX=${MAX:-6}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in 1 2; do
	GATEPATH_REQUESTS=$n go test -tags gatepath -covermode=atomic -coverpkg=./... \
		-coverprofile="$work/$n.out" -run '^TestGatedRequestPath$' -count=1 . >/dev/null
done
module=$(go list -m)
# Each profile line: file:startLine.col,endLine.col statements count.
awk -v m="$module/" 'FNR == 1 { next }
	FILENAME ~ /1\.out$/ { one[$1] = $3; next }
	$3 > one[$1] { f = $1; sub(/:.*/, "", f); sub(m, "", f); if (f !~ /_test\.go$/) ran[f] = 1 }
	END { for (f in ran) print f }' "$work/1.out" "$work/2.out" | sort > "$work/files"
count=$(wc -l < "$work/files")
echo "one gated request runs code in $count of the project's files (at most $MAX):"
sed 's/^/  /' "$work/files"
[ "$count" -le "$MAX" ]
