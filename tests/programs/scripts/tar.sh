# tar: create an archive of a tree through the view, then extract it (into a
# fresh directory and over an existing one) and compare. (tar -S, which
# looks for holes, is in sparse.sh.)
. "$(dirname "$0")/lib.sh"
run 'mkdir -p src/sub/deeper src/empty && seq 1 30000 > src/numbers && printf "%s\n" alpha beta > src/sub/words'
run 'head -c 200000 /dev/zero | tr "\0" "z" > src/sub/deeper/zzz && chmod 0751 src/sub/deeper/zzz'
run 'truncate -s 5M src/sparse && printf tail >> src/sparse'
run 'ln -s sub/words src/wordlink && ln src/numbers src/numbers.hard'
run 'find src -exec touch -h -d "2020-01-02 03:04:05" {} +'
A='--sort=name --owner=0 --group=0 --numeric-owner --format=gnu'
run "tar -cf a.tar $A src && tar -tvf a.tar"
run "tar -cf - $A src | gzip -n > a.tgz && gzip -t a.tgz && tar -tzf a.tgz | wc -l"
run 'mkdir out && tar -xf a.tar -C out && diff -r src out/src'
run 'tar -df a.tar -C out'              # compares content, mode, mtime, size with the archive
run 'find out/src -exec stat -c "%n %a %s %Y %h" {} + | sort'
run 'echo changed > out/src/numbers && tar -xf a.tar -C out && cmp src/numbers out/src/numbers'   # over existing files
run 'mkdir out2 && tar -xzf a.tgz -C out2 && diff -r src out2/src'
run 'tar -xOf a.tar src/sub/words'
run 'md5sum a.tar a.tgz'
finish
