#!/usr/bin/env bash
# Two rules from docs/code-style.md §7 that a compiler cannot check:
#  1. Every linkat, renameat, FICLONE and mmap call in core/src/ has an
#     ISOLATION:, ATOMICITY: or DURABILITY: comment in the lines above it,
#     saying why the sequence is safe.
#  2. Raw syscalls live in core/sys/ (and, for the calls to the FUSE kernel
#     module itself, fuse/kernel_io.*) only: core/src/, fuse/ and mount/
#     call the Result-returning wrappers.
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0

# Rule 1: look back up to 20 lines from each call for a justification.
while IFS= read -r file; do
  awk -v f="$file" '
    { lines[NR] = $0 }
    /sys::(linkat|renameat|ficlone|mmap)\(|::(linkat|renameat2?|mmap)\(|FICLONE/ && !/^[[:space:]]*\/\// {
      ok = 0
      for (i = NR - 1; i >= 1 && i >= NR - 20; i--)
        if (lines[i] ~ /(ISOLATION|ATOMICITY|DURABILITY):/) { ok = 1; break }
      if (!ok) { printf "%s:%d: no ISOLATION:/ATOMICITY:/DURABILITY: comment above: %s\n", f, NR, $0; bad = 1 }
    }
    END { exit bad }' "$file" || fail=1
done < <(find core/src -name '*.cpp')

# Rule 2: raw calls outside the syscall layer. `::name(` with a global
# qualifier is how snapfs code spells a raw call.
banned='(^|[^[:alnum:]_:])::(open|openat|openat2|creat|read|write|pread|pwrite|preadv|pwritev|linkat|link|renameat|renameat2|rename|unlinkat|unlink|mkdirat|mknodat|symlinkat|readlinkat|fstatat|statx|fchmod|fchmodat|fchown|fchownat|ftruncate|fallocate|fsync|fdatasync|ioctl|mmap|munmap|mremap|msync|copy_file_range|syscall|getxattr|setxattr|fgetxattr|fsetxattr|lgetxattr|lsetxattr|listxattr|flistxattr)\('
hits=$(grep -rnE "$banned" core/src fuse mount --include='*.cpp' --include='*.hpp' 2>/dev/null \
        | grep -v '^fuse/kernel_io\.' | grep -vE ':[0-9]+:[[:space:]]*//')
if [[ -n "$hits" ]]; then
  echo "raw syscalls outside core/sys/ (use the sys:: wrappers):"
  echo "$hits"
  fail=1
fi

[[ $fail -eq 0 ]] && echo "lint-bans: ok"
exit $fail
