# git: init, add, commit, branch, checkout, status, gc (lock files, renames,
# mmap of the index and packs, loose objects written once and read back).
. "$(dirname "$0")/lib.sh"
G='git -c init.defaultBranch=main -c core.fsync=all -c pack.threads=1 -c gc.autoDetach=false'
run "$G init -q repo"
cd repo || exit 98
run 'seq 1 1000 > numbers && mkdir -p src/lib && printf "int main(void) { return 0; }\n" > src/main.c && echo "# readme" > README'
run 'ln -s src/main.c main-link && chmod +x README'
run "$G add -A && $G status --short"
run "$G commit -q -m initial && $G log --format=%H:%s"
run "$G branch feature && $G checkout -q feature && $G branch --list"
run "echo feature >> README && sed -i s/^5/five/ numbers && $G commit -q -am feature && $G rev-parse HEAD"
run "$G checkout -q main && cat README && head -n 5 numbers | tail -n 1"
run "echo main-only > src/lib/extra.c && $G add src/lib/extra.c && $G commit -q -m extra && $G rev-parse HEAD"
run "$G merge -q --no-edit feature && $G log --format=%s --graph"
run "$G status --porcelain=v1 --untracked-files=all; echo dirty > untracked; $G status --porcelain=v1"
run "$G stash -q -u && $G status --porcelain=v1 && $G stash pop -q && $G status --porcelain=v1"
run "$G checkout -q -b topic HEAD~1 && ls src/lib && $G checkout -q main"
run "$G gc -q --aggressive --prune=now && $G count-objects -v | grep -v size"
run "$G fsck --full --strict && $G verify-pack -v .git/objects/pack/*.idx | tail -n 2"
run "$G log --format=%H:%s --all | sort"
run "$G status --porcelain=v1"
run "rm -f untracked && $G clone -q . ../clone && cd ../clone && $G log --format=%s | head -n 1 && $G status --short"
finish
