# Two sqlite3 sessions on one database at once (rollback journal): the first
# keeps its connection open while a second process inserts a row; then the
# first reads and inserts again. In a plain directory SQLite's locks and its
# change counter make each session see the other's committed rows.
. "$(dirname "$0")/lib.sh"
run "sqlite3 shared.db 'PRAGMA journal_mode=DELETE; CREATE TABLE t(x); INSERT INTO t VALUES(1);'"
run 'cat > session.sql <<"SQL"
INSERT INTO t VALUES(2);
.system sqlite3 shared.db "INSERT INTO t VALUES(3)"
.system sqlite3 shared.db "SELECT group_concat(x) FROM t"
SELECT group_concat(x) FROM t;
INSERT INTO t VALUES(4);
SQL'
run 'sqlite3 -bail shared.db < session.sql'
run "sqlite3 shared.db 'SELECT group_concat(x) FROM t; PRAGMA integrity_check;'"
finish
