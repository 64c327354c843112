# Writing a file through one of its hard links (`>>`, `sed -i` replaces the
# name instead, which breaks the link everywhere). On a plain filesystem the
# other name sees the write: it is the same inode.
. "$(dirname "$0")/lib.sh"
run 'echo one > a && ln a b && stat -c "%n %h" a b'
run 'echo two >> b && cat a && stat -c "%n %h" a b'
run 'test "$(stat -c %i a)" = "$(stat -c %i b)" && echo same inode'
run 'printf X | dd of=a conv=notrunc bs=1 seek=0 status=none && cat b'
finish
