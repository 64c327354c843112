# sed -i: writes a temporary file in the same directory, then renames it
# over the original (keeping mode and owner).
. "$(dirname "$0")/lib.sh"
run 'seq 1 5000 > f && chmod 0604 f'
run 'sed -i "s/^1/one-/" f && head -n 3 f && stat -c %a f'
run 'sed -i.bak -e "/^2/d" f && wc -l f f.bak'
run 'printf "a\nb\n" > g && ln -s g link_to_g && sed -i --follow-symlinks "s/a/A/" link_to_g && cat g && readlink link_to_g'
run 'sed -i "1i header" f g && head -n 1 f g'
run 'mkdir d && seq 3 > d/x && sed -i -n "2p" d/x && cat d/x'
run 'sed -i "s/x/y/" empty_missing 2>&1 | sed "s/^.*: //"; true'
run 'md5sum f f.bak g'
run 'ls -1 && ls -1 d'
finish
