# Prelude of every program script (POSIX sh; sourced, never run by itself).
#
#   sh <script> DIR [ARG...]
#
# The script works in DIR (once in the mount M, once in a plain directory on
# the same filesystem) using relative paths only, so that its output does not
# depend on where DIR is. `run` executes one step, then prints its exit status;
# the test compares this transcript and the resulting trees between the runs.
# The script exits with the number of steps that failed.
set -u
export LC_ALL=C TZ=UTC
# Deterministic output: no locale, no user or system configuration.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=snapfs GIT_AUTHOR_EMAIL=snapfs@example.invalid
export GIT_COMMITTER_NAME=snapfs GIT_COMMITTER_EMAIL=snapfs@example.invalid
export GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'
export SOURCE_DATE_EPOCH=1704067200 PYTHONHASHSEED=0
# Python must write its bytecode cache; make and CMake take no outside hints.
unset PYTHONDONTWRITEBYTECODE MAKEFLAGS CMAKE_GENERATOR

failed=0
# run 'shell text': one step. Its stdout and stderr go into the transcript.
run() {
  (eval "$1")
  rc=$?
  echo "== exit $rc: $1"
  [ "$rc" -eq 0 ] || failed=$((failed + 1))
}
# The same for a step that must fail (the status is still in the transcript).
run_fails() {
  (eval "$1")
  rc=$?
  echo "== exit $rc: $1"
  [ "$rc" -ne 0 ] || failed=$((failed + 1))
}
finish() { exit "$failed"; }

DIR=$1
shift
cd "$DIR" || exit 99
