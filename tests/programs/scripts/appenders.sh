# Several writers appending to one log (docs/semantics.md#conflicts: concurrent
# appenders never lose lines), the ways shell scripts share a log file:
#  1. the script keeps the log open on a descriptor (`exec 3>>log`) while a
#     builtin appends to it by name;
#  2. a group's `>> log` is inherited by a child process that also opens the
#     log by name;
#  3. two background loops append to the same log at once.
. "$(dirname "$0")/lib.sh"
run 'exec 3>>log1 && echo "script: start" >&3 && echo "builtin: line" >> log1 && echo "script: end" >&3 && exec 3>&- && cat log1'
run '{ echo "group: start"; sh -c "echo child: line >> log2"; echo "group: end"; } >> log2 && cat log2'
run '(for i in $(seq 1 200); do echo "A $i"; done >> log3) & (for i in $(seq 1 200); do echo "B $i"; done >> log3) & wait; wc -l < log3; sort log3 | md5sum'
# The two loops interleave in a different order on every run, also in a plain
# directory: keep the log sorted so that the tree comparison is about which
# lines are there, which the transcript above already checks.
run 'sort -o log3 log3'
finish
