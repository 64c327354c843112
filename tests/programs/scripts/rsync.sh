# rsync: a local copy (temporary file + rename), an update with the delta
# algorithm, --inplace and --delete, and a second run that finds nothing to do.
. "$(dirname "$0")/lib.sh"
run 'mkdir -p src/a/b src/c && seq 1 50000 > src/big && seq 7 > src/a/b/small && ln -s ../big src/c/link && chmod 0600 src/a/b/small'
run 'find src -exec touch -h -d "2021-05-06 07:08:09" {} +'
R='--itemize-changes --out-format=%i:%n%L'
run "rsync -a $R src/ dst/ | sort"
run 'diff -r src dst && stat -c "%n %a %Y" dst/big dst/a/b/small'
run "rsync -a $R src/ dst/ | sort"      # nothing to do
run 'sed -i "s/^4/X/" src/big && touch -d "2021-05-06 07:08:10" src/big && seq 3 > src/c/new'
run "rsync -a --no-whole-file $R src/ dst/ | sort && cmp src/big dst/big"   # delta transfer
run 'echo inplace >> src/a/b/small && rsync -a --inplace src/ dst/ && cmp src/a/b/small dst/a/b/small'
run 'rm src/c/new && rsync -a --delete src/ dst/ && test ! -e dst/c/new'
run 'rsync -a --backup --suffix=.old src/big dst/big2 && rsync -a --backup --suffix=.old src/a/b/small dst/big2 && ls dst'
run 'rsync -rlc src/ dst_c/ && diff -r src dst_c'
run 'find dst dst_c -exec stat -c "%n %a %s" {} + | sort'
finish
