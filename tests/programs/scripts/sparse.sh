# Holes: a file made sparse with truncate, then appended to and rewritten in
# place; tar -S and cp --sparse=auto find the holes with SEEK_DATA/SEEK_HOLE
# (the archive is only small if the file still has them).
. "$(dirname "$0")/lib.sh"
# "sparse" when fewer than 1 MiB of the file's 8 MiB are allocated.
sparse() { if [ "$(stat -c %b "$1")" -lt 2048 ]; then echo "$1 sparse"; else echo "$1 allocated"; fi; }
run 'truncate -s 8M f && sparse f'
run 'printf tail >> f && sparse f && wc -c < f'
run 'printf head | dd of=f conv=notrunc status=none && sparse f'
run 'tar -cSf f.tar --format=gnu --owner=0 --group=0 --mtime=@0 f && stat -c %s f.tar'
run 'mkdir x && tar -xSf f.tar -C x && cmp f x/f && sparse x/f'
run 'cp --sparse=auto f g && cmp f g && sparse g'
finish
