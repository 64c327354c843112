# sqlite3 with a rollback journal (journal_mode=DELETE): transactions,
# a rollback, the journal created and deleted beside the database, several
# sessions one after the other, integrity_check and VACUUM.
. "$(dirname "$0")/lib.sh"
run "sqlite3 db.sqlite <<'SQL'
PRAGMA journal_mode=DELETE;
PRAGMA synchronous=FULL;
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 5000)
INSERT INTO t(v) SELECT printf('row %05d %s', x, hex(zeroblob(20))) FROM c;
COMMIT;
SELECT count(*), sum(id) FROM t;
BEGIN;
DELETE FROM t WHERE id % 2 = 0;
SELECT count(*) FROM t;
ROLLBACK;
SELECT count(*) FROM t;
SQL"
run 'ls'                                    # no journal left behind
run "sqlite3 db.sqlite 'PRAGMA journal_mode; UPDATE t SET v = upper(v) WHERE id <= 100; SELECT v FROM t WHERE id = 1;'"
run "sqlite3 db.sqlite 'CREATE INDEX tv ON t(v); DELETE FROM t WHERE id > 4000; VACUUM; PRAGMA integrity_check; SELECT count(*) FROM t;'"
run "sqlite3 db.sqlite 'PRAGMA page_count; PRAGMA freelist_count;'"
run "sqlite3 -readonly db.sqlite 'SELECT max(id), min(v) FROM t;'"
# A crash in the middle of a transaction: with a tiny page cache the changed
# pages spill into the database file before COMMIT, then sqlite3 is killed.
# The kernel closes its descriptors, so the half-written database and the hot
# journal are published as they are, as they would be in a plain directory;
# the next session must roll the journal back.
run 'cp db.sqlite before-crash.sqlite'
run_fails "sqlite3 db.sqlite <<'SQL'
PRAGMA cache_size=2;
BEGIN;
UPDATE t SET v = 'CRASHED ' || v;
.system kill -9 \$PPID
COMMIT;
SQL"
run 'ls; cmp -s db.sqlite before-crash.sqlite; echo "database file changed: $?"'   # hot journal, spilled pages
run "sqlite3 db.sqlite 'PRAGMA integrity_check; SELECT count(*) FROM t WHERE v LIKE \"CRASHED%\";'"
run 'ls'                                    # and gone after the rollback
run "sqlite3 db.sqlite '.dump' | md5sum"
run "sqlite3 db.sqlite '.backup copy.sqlite' && sqlite3 copy.sqlite 'SELECT count(*) FROM t;'"
run 'ls'
finish
