# coreutils and the shell's own redirections: cp, mv, dd, truncate, tee,
# `>`, `>>`, `<>`, ln, sort -o, install, rm.
. "$(dirname "$0")/lib.sh"

# Shell redirections.
run 'seq 1 20000 > big'                         # O_CREAT|O_TRUNC, new file
run 'echo tail >> big'                          # O_APPEND
run 'printf "old content\n" > t && printf "new\n" > t && cat t'   # O_TRUNC of a non-empty file
run ': > emptied && printf abc > e2 && : > e2 && wc -c < e2'
run 'printf 12345 > rw && exec 3<>rw && printf AB >&3 && exec 3>&- && cat rw && echo'
run '{ echo one; echo two; } > grouped && cat grouped'
run 'for i in 1 2 3; do echo "line $i" >> appended; done && cat appended'
run_fails 'cat nonexistent > never 2>/dev/null'   # the redirect creates "never", cat fails
run 'wc -c < never'

# cp
run 'cp big copy && cmp big copy'
run 'chmod 0640 big && cp -p big copy_p && stat -c "%a %s" copy_p'
run 'test "$(stat -c %y big)" = "$(stat -c %y copy_p)"'   # cp -p keeps mtime (futimens before close)
run 'cp copy copy_over && seq 1 10 > small && cp small copy_over && cat copy_over | wc -l'
run 'cp --reflink=auto big reflinked && cmp big reflinked'
run 'truncate -s 3M sparse_src && printf end >> sparse_src && cp --sparse=always sparse_src sparse_dst && cmp sparse_src sparse_dst'
run 'mkdir -p tree/a/b tree/c && seq 100 > tree/a/b/f && ln -s a/b/f tree/link && echo x > tree/c/g && chmod 0600 tree/c/g'
run 'cp -a tree tree_a && diff -r tree tree_a && readlink tree_a/link'
run 'cp -r tree tree_r && find tree_r | sort'

# mv
run 'mv copy moved && test ! -e copy && cmp big moved'
run 'mv moved tree/c/ && ls tree/c'
run 'cp small victim && mv copy_over victim && wc -l < victim'
run 'mv tree_r tree_moved && find tree_moved | sort'
run 'mv -T tree_a/c tree_a/c2 && ls tree_a'

# dd
run 'dd if=/dev/zero of=zeros bs=4096 count=100 status=none && wc -c < zeros'
run 'dd if=big of=slice bs=1000 skip=3 count=5 status=none && md5sum slice'
run 'printf PATCH | dd of=big conv=notrunc bs=1 seek=100 status=none && head -c 120 big | tail -c 30 && echo'
run 'printf APPENDED | dd of=big oflag=append conv=notrunc status=none && tail -c 12 big && echo'
run 'printf X | dd of=holey bs=1 seek=100000 status=none && wc -c < holey'
run 'dd if=big of=synced bs=64k conv=fsync status=none && cmp big synced'
run 'dd if=big of=slice bs=10 count=1 status=none && wc -c < slice'  # O_TRUNC by default

# truncate
run 'truncate -s 1M grown && wc -c < grown'
run 'cp big shrunk && truncate -s 100 shrunk && md5sum shrunk'
run 'truncate -s +50 shrunk && wc -c < shrunk'
run 'truncate -s 0 shrunk && wc -c < shrunk'
run 'truncate -s 10 newfile_by_truncate && od -c newfile_by_truncate | head -2'

# tee
run 'seq 5 | tee t1 t2 > /dev/null && cat t1 t2 | md5sum'
run 'seq 3 | tee -a t1 > /dev/null && cat t1'

# Links, in-place rewrites, install, rm. (Writing through a second hard link
# is hardlink.sh: its result depends on the filesystem.)
run 'ln -s big symlink && wc -c < symlink && readlink symlink'
run 'ln tree/a/b/f hardlink && stat -c %h tree/a/b/f hardlink'
run 'sort -r -o small small && head -n 2 small'
run 'install -m 0755 small installed && stat -c %a installed'
run 'mkdir -p deep/er/est && touch deep/er/est/f && rm -r deep && test ! -e deep'
run 'touch -d "2001-02-03 04:05:06" big && stat -c %y big'
run 'chmod 0644 big && stat -c %a big'
run 'md5sum big copy_p reflinked synced'
run 'find . -path ./lost+found -prune -o -print | sort'
finish
