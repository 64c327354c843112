#!/usr/bin/env bash
# Drives the bash completion of snapfs (packaging/bash-completion/snapfs) as
# bash does: sources the file, sets COMP_WORDS and COMP_CWORD the way bash
# splits a command line (also at '=' and ':', COMP_WORDBREAKS), calls the
# function that `complete -p snapfs` names, and compares COMPREPLY.
# Usage: completion_test.sh COMPLETION_FILE
set -uo pipefail

file=$1
work=$(mktemp -d "${SNAPFS_TEST_TMPDIR:-/tmp}/snapfs-test-completion-XXXXXX")
trap 'rm -rf -- "$work"' EXIT

# shellcheck source=/dev/null
source "$file"

failures=0
spec=$(complete -p snapfs 2>&1)
if [[ "$spec" != "complete -F _snapfs snapfs" ]]; then
  echo "FAIL: complete -p snapfs printed '$spec'" >&2
  exit 1
fi
func=${spec#complete -F }
func=${func%% *}

# expect "WANTED|REPLIES" WORD...: the replies wanted, in any order,
# separated by '|' (a mount point may hold a blank). The WORDs are COMP_WORDS
# as bash splits them ("--durability" "=" "fu"); the last one is being
# completed (COMP_CWORD).
expect() {
  local want=$1 got
  shift
  COMP_WORDS=("$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="$*"
  COMP_POINT=${#COMP_LINE}
  COMPREPLY=()
  "$func" snapfs "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
  got=$(printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | LC_ALL=C sort | tr '\n' '|')
  got=${got%|}
  want=$(tr '|' '\n' <<<"$want" | sed '/^$/d' | LC_ALL=C sort | tr '\n' '|')
  want=${want%|}
  if [[ "$got" != "$want" ]]; then
    echo "FAIL: COMP_WORDS=($(printf '[%s] ' "$@")): got '$got', want '$want'" >&2
    failures=$((failures + 1))
  fi
}

# Directories (compgen -d; readline adds the '/') and the mount point listing
# do not depend on the host.
cd "$work"
mkdir -p srv/data srv/dump mnt
printf '1 0 8:1 / / rw - ext4 /dev/sda1 rw\n' >"$work/mountinfo"
printf '40 1 0:50 / /mnt/view rw,nosuid,nodev shared:7 - fuse.snapfs /srv/data rw\n' >>"$work/mountinfo"
printf '41 1 0:51 / /mnt/my\\040view rw,nosuid,nodev - fuse.snapfs /srv/x rw\n' >>"$work/mountinfo"
printf '42 1 0:52 / /mnt/sshfs rw master:1 shared:2 - fuse.sshfs host: rw\n' >>"$work/mountinfo"
printf '43 1 0:53 / /mnt/vault rw - fuse.snapfs.other /srv/y rw\n' >>"$work/mountinfo"
_snapfs_mountpoints() { _snapfs_mountpoints_from "$work/mountinfo"; }

# Subcommands and top-level options.
expect 'mount|umount|unmount|status|conflicts|events|run|runs' snapfs ''
expect 'run|runs' snapfs ru

# snapfs run: a mount point, then after -- a command and its arguments.
expect '/mnt/view|/mnt/my view' snapfs run ''
expect '--|-h|--help' snapfs run -
snapfs-completion-test-cmd() { :; }  # compgen -c lists functions too
expect 'snapfs-completion-test-cmd' snapfs run /mnt/view -- snapfs-completion-test-c
expect 'srv/data|srv/dump' snapfs run /mnt/view -- ls srv/d
expect '--json|-h|--help' snapfs runs -
expect 'umount|unmount' snapfs u
expect '-h|--help|-V|--version' snapfs -
expect '--help|--version' snapfs --

# snapfs mount: options, values, directories.
expect '--foreground|--debug|--log-level|--shared|--passthrough|--exclusive|--durability|--on-conflict|--threads|--help' \
  snapfs mount --
expect '--durability' snapfs mount --du
expect 'fast|atomic|full' snapfs mount --durability ''
expect 'full' snapfs mount --durability fu
expect 'full' snapfs mount --durability = fu
expect 'fast|atomic|full' snapfs mount --durability =
expect 'fail|overwrite' snapfs mount -f --on-conflict ''
expect 'warn' snapfs mount --log-level wa
expect '' snapfs mount --threads ''
expect 'srv/data|srv/dump' snapfs mount srv/d
expect 'mnt' snapfs mount srv/data m

# -o lists: option names, then values after '=', also after a comma.
expect 'durability=' snapfs mount -o dur
expect 'cache_dir=|cache_timeout=' snapfs mount -o cache_
expect 'fast|atomic|full' snapfs mount -o durability = ''
expect 'atomic' snapfs mount -o durability = a
expect 'full,kernel_io=' snapfs mount -o durability = full,kern
expect 'auto|off' snapfs mount -o durability = full,kernel_io =
expect 'off' snapfs mount -o durability = full,kernel_io = o
expect 'b,on-conflict=' snapfs mount -o shared = a : b,on-conf
expect 'fail|overwrite' snapfs mount -o shared = a : b,on-conflict = ''
expect 'noauto_unmount|nofail|noauto' snapfs mount -o no
expect 'trace' snapfs mount srv/data mnt -o log_level = t
# The libfuse form `snapfs B M -o opts`.
expect 'exclusive' snapfs srv/data mnt -o ex

# Mount points of fuse.snapfs mounts only, with mountinfo's \040 decoded.
expect '/mnt/view|/mnt/my view' snapfs umount ''
expect '/mnt/my view' snapfs status /mnt/m
expect '/mnt/view|/mnt/my view' snapfs conflicts /mnt/
expect '/mnt/view|/mnt/my view' snapfs unmount -l ''
expect '-l|--lazy|-h|--help' snapfs umount -
expect '--json' snapfs status --j
expect '--json|--help' snapfs conflicts --
expect '/mnt/view|/mnt/my view' snapfs events -f /mnt/
expect '--follow|--json|--after|--help' snapfs events --
expect '' snapfs events --after ''

# Without '=' and ':' in COMP_WORDBREAKS bash leaves those words whole.
COMP_WORDBREAKS=' '
expect '--durability=full' snapfs mount --durability=fu
expect 'durability=full,kernel_io=off' snapfs mount -o durability=full,kernel_io=o

if [[ $failures -ne 0 ]]; then
  echo "$failures completion checks failed" >&2
  exit 1
fi
echo "OK: bash completion of snapfs"
