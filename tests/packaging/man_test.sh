#!/usr/bin/env bash
# Tests of the manual pages (docs/man/):
#   man_test.sh render  MAN_BUILD_DIR
#       groff -ww and man -l render snapfs(1) and mount.snapfs(8), as built,
#       without a warning. Skipped (77) without groff or man.
#   man_test.sh options SNAPFS MOUNT_SNAPFS MAN_BUILD_DIR
#       every subcommand and option the programs' --help lists is in the
#       manual page: each subcommand of `snapfs --help` and the options of its
#       own --help, every -o mount option of `snapfs mount --help` (also those
#       accepted without effect and those refused), and the flags of
#       `mount.snapfs --help` in mount.snapfs(8).
set -euo pipefail

skip() {
  echo "SKIPPED: $*"
  exit 77
}

pages=(snapfs.1 mount.snapfs.8)

render() {
  local dir=$1 page err status=0
  command -v groff >/dev/null || skip "groff not found (package groff-base)"
  command -v man >/dev/null || skip "man not found (package man-db)"
  for page in "${pages[@]}"; do
    [[ -f "$dir/$page" && -f "$dir/$page.gz" ]] || { echo "FAIL: $dir/$page(.gz) not built" >&2; exit 1; }
    err=$(LC_ALL=C.UTF-8 groff -ww -z -man -Tutf8 "$dir/$page" 2>&1)
    if [[ -n "$err" ]]; then
      echo "FAIL: groff -ww warns about $page:" >&2
      echo "$err" >&2
      status=1
    fi
    # man(1) as a user runs it, on the compressed page that is installed;
    # --warnings=w is groff's -ww.
    err=$(LC_ALL=C.UTF-8 MANWIDTH=80 MAN_KEEP_FORMATTING=1 man --warnings=w -l "$dir/$page.gz" 2>&1 >/dev/null)
    if [[ -n "$err" ]]; then
      echo "FAIL: man --warnings=w -l warns about $page:" >&2
      echo "$err" >&2
      status=1
    fi
    [[ $status -ne 0 ]] || echo "OK: $page renders without warnings"
  done
  return $status
}

# The page's text without comments, with roff escapes of hyphens and fonts
# removed, so that "\-\-lazy" and "\fB\-o\fP" read as "--lazy" and "-o".
plain() {
  sed -e '/^\.\\"/d' -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' -e 's/\\f(..//g' -e 's/\\&//g' -e 's/\\(aq/'"'"'/g' "$1"
}

missing=0
# check WHAT TOKEN PAGE_TEXT: TOKEN must appear in the page as a word of its
# own (not inside a longer option name).
check() {
  local what=$1 token=$2 text=$3 re
  re=$(printf '%s' "$token" | sed -e 's/[][\.*^$+?(){}|/]/\\&/g')
  # A name that ends in '=' is followed by its value.
  local after='([^A-Za-z0-9_-]|$)'
  [[ $token == *= ]] && after=''
  if ! grep -Eq -- "(^|[^A-Za-z0-9_-])${re}${after}" <<<"$text"; then
    echo "FAIL: $what '$token' is not in the manual page" >&2
    missing=1
  fi
}

# Flags in the "Options:" section of a CLI11 help text ("  -l,--lazy  ...",
# "  --shared,--passthrough GLOB ..."), one a line.
cli11_flags() {
  awk '/^Options:/ { on = 1; next } /^[^ ]/ { on = 0 } on && /^  -/ { print $1 }' |
    tr ',' '\n' | grep -E '^-'
}

options() {
  local snapfs=$1 helper=$2 dir=$3 text8 text1 sub help line tok
  text1=$(plain "$dir/snapfs.1")
  text8=$(plain "$dir/mount.snapfs.8")
  local n=0

  for tok in $("$snapfs" --help | cli11_flags); do
    check "option of snapfs" "$tok" "$text1"
    n=$((n + 1))
  done
  # Subcommands: "  umount, unmount   Unmount ..." under "Subcommands:".
  local subs
  subs=$("$snapfs" --help |
    awk '/^Subcommands:/ { on = 1; next } /^[^ ]/ { on = 0 } on && /^  [a-z]/ { print }' |
    sed -E 's/^  ([a-z, -]+[a-z]) {2,}.*/\1/' | tr ',' '\n' | tr -d ' ')
  [[ -n "$subs" ]] || { echo "FAIL: no subcommands found in snapfs --help" >&2; exit 1; }
  for sub in $subs; do
    check "subcommand" "$sub" "$text1"
    n=$((n + 1))
    for tok in $("$snapfs" "$sub" --help | cli11_flags); do
      check "option of snapfs $sub" "$tok" "$text1"
      n=$((n + 1))
    done
  done

  # -o mount options of `snapfs mount --help`: the names in the first column
  # between "Mount options" and "Accepted without effect" ("shared=GLOB...",
  # "auto_unmount, noauto_unmount", "threads=N, log_level=L, debug"), with
  # their fixed values ("kernel_io=auto|off").
  help=$("$snapfs" mount --help)
  local table
  table=$(awk '/^Mount options/ { on = 1; next } /^Accepted without effect/ { on = 0 }
              on && /^  [a-z_]/ { print }' <<<"$help" |
    sed -E 's/^  //; s/ {2,}.*//; s/ (fast|fail):.*//')
  [[ -n "$table" ]] || { echo "FAIL: no mount options found in snapfs mount --help" >&2; exit 1; }
  while IFS= read -r line; do
    for tok in ${line//,/ }; do
      case $tok in
        *=*)
          check "mount option" "${tok%%=*}=" "$text1"
          n=$((n + 1))
          local value=${tok#*=}
          if [[ "$value" =~ ^[a-z]+(\|[a-z]+)+$ ]]; then
            for v in ${value//|/ }; do
              check "value of ${tok%%=*}=" "$v" "$text1"
              n=$((n + 1))
            done
          fi
          ;;
        *)
          check "mount option" "$tok" "$text1"
          n=$((n + 1))
          ;;
      esac
    done
  done <<<"$table"

  # "Accepted without effect (...): rw, defaults, ..., user=*, x-*, ...
  # lazytime (and no* forms), ... nonempty." and "Refused: ro, noexec, ...".
  local accepted refused
  accepted=$(awk '/^Accepted without effect/ { on = 1 } on { print } /\.( |$)/ && on { exit }' <<<"$help" |
    tr '\n' ' ' | sed -E 's/^[^:]*: //; s/\. The mount is.*//; s/\.[[:space:]]*$//; s/\(and no\*[[:space:]]+forms\)//')
  refused=$(grep -E '^Refused:' <<<"$help" | sed -E 's/^Refused: //; s/ \(.*//; s/\.$//')
  [[ -n "$accepted" && -n "$refused" ]] ||
    { echo "FAIL: no accepted or refused options found in snapfs mount --help" >&2; exit 1; }
  for tok in ${accepted//,/ } ${refused//,/ }; do
    tok=${tok%\*}   # user=*, x-*, comment=*: the name is enough
    check "mount option" "$tok" "$text1"
    n=$((n + 1))
  done

  # mount.snapfs --help: "mount.snapfs B M [-sfnv] [-o opts]".
  local flags
  flags=$("$helper" --help | sed -nE 's/^Usage: mount\.snapfs .*\[-([a-z]+)\].*/\1/p')
  [[ -n "$flags" ]] || { echo "FAIL: no flags found in mount.snapfs --help" >&2; exit 1; }
  for ((i = 0; i < ${#flags}; i++)); do
    check "flag of mount.snapfs" "-${flags:i:1}" "$text8"
    n=$((n + 1))
  done
  for tok in -o -h --help; do
    check "flag of mount.snapfs" "$tok" "$text8"
    n=$((n + 1))
  done

  [[ $missing -eq 0 ]] || exit 1
  echo "OK: the $n subcommands, options and values that --help lists are in the manual pages"
}

case "${1:-}" in
  render) render "$2" ;;
  options) options "$2" "$3" "$4" ;;
  *)
    echo "usage: $0 render MAN_BUILD_DIR | options SNAPFS MOUNT_SNAPFS MAN_BUILD_DIR" >&2
    exit 2
    ;;
esac
