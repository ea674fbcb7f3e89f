#!/bin/bash
# timed.sh NAME CMD...: run one make step and say how long it took.
name=$1
shift
start=$SECONDS
"$@"
rc=$?
echo "== make $name: $((SECONDS - start)) s$([ $rc = 0 ] || echo ", failed ($rc)")"
exit $rc
