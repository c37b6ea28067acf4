#!/bin/sh
# Fuzz one target for a bounded time on a temporary copy of its seed corpus (the repository is not
# modified), under the sanitizers it was built with; fail on any crash, leak, timeout or report.
#   run-target.sh TARGET CORPUS_DIR
# POWERD_FUZZ_SECONDS (default 10) bounds the run; POWERD_FUZZ_ARTIFACTS (default: the current
# directory) receives the crashing input, if any. A line of statistics goes to stdout, and is
# appended to the file POWERD_FUZZ_STATS names, if set.
set -eu
target=$1 corpus=$2
seconds=${POWERD_FUZZ_SECONDS:-10}
artifacts=${POWERD_FUZZ_ARTIFACTS:-$PWD}
name=$(basename "$target")
# On tmpfs where there is one: the fixture targets rebuild a small tree per input, about 30 times
# faster there than on a journaled disk.
work=$(mktemp -d -p /dev/shm powerd-fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/tmp" "$work/crash"
if [ -d "$corpus" ]; then
	cp -R "$corpus"/. "$work/corpus/"
fi
# A dictionary of the input's tokens, where the target has one (dict/http.dict for fuzz_http;
# dict/config.dict for both configs).
case $name in
fuzz_config_*) dict=$(dirname "$0")/dict/config.dict ;;
*) dict=$(dirname "$0")/dict/${name#fuzz_}.dict ;;
esac
[ -f "$dict" ] || dict=
rc=0
TMPDIR=$work/tmp \
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	"$target" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 -max_len=16384 \
	-print_final_stats=1 -artifact_prefix="$work/crash/" ${dict:+"-dict=$dict"} "$work/corpus" \
	>"$work/log" 2>&1 || rc=$?
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log")
stats="$name: ${runs:-?} runs in ${seconds}s, ${rate:-?} exec/s, corpus $(find "$work/corpus" -type f | wc -l) inputs"
echo "$stats"
if [ -n "${POWERD_FUZZ_STATS:-}" ]; then
	echo "$stats" >>"$POWERD_FUZZ_STATS"
fi
if [ "$rc" -ne 0 ]; then
	tail -n 60 "$work/log"
	for f in "$work/crash"/*; do
		[ -e "$f" ] || continue
		cp "$f" "$artifacts/$name-$(basename "$f")"
		echo "$name: crashing input kept as $artifacts/$name-$(basename "$f")"
	done
	echo "$name: FAILED (exit $rc)"
	exit 1
fi
