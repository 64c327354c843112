# python3: file writes (text, binary, append, os.replace, tempfile, shutil),
# importing a package (the interpreter writes __pycache__ beside it) and
# compileall.
. "$(dirname "$0")/lib.sh"
PY=${SNAPFS_PYTHON:-python3}
run "$PY - <<'PY'
import os, shutil, tempfile
with open('text.txt', 'w') as f:
    for i in range(10000):
        f.write(f'line {i}\n')
with open('text.txt', 'a') as f:
    f.write('appended\n')
with open('bin.dat', 'wb') as f:
    f.write(bytes(range(256)) * 1000)
with open('bin.dat', 'r+b') as f:
    f.seek(1000); f.write(b'PATCH'); f.seek(0, 2); print('size', f.tell())
    f.truncate(200000)
with open('atomic.json.tmp', 'w') as f:
    f.write('{\"k\": 1}\n'); f.flush(); os.fsync(f.fileno())
os.replace('atomic.json.tmp', 'atomic.json')
fd, name = tempfile.mkstemp(dir='.', prefix='tmp-')
os.write(fd, b'temp'); os.close(fd)
os.rename(name, 'from_mkstemp')
shutil.copy2('text.txt', 'copy2.txt')
os.makedirs('pkg/sub', exist_ok=True)
os.makedirs('data/deep', exist_ok=True)
with open('data/deep/f', 'w') as f:
    f.write('data')
shutil.copytree('data', 'data_copy')
with open('text.txt') as f:
    print('lines', sum(1 for _ in f))
with open('x', 'x') as f:
    f.write('exclusive')
try:
    open('x', 'x')
except FileExistsError as e:
    print('FileExistsError', e.errno)
print(os.stat('copy2.txt').st_mtime_ns == os.stat('text.txt').st_mtime_ns)
PY"
run "cat > pkg/__init__.py <<'PY'
from .mod import VALUE
PY
cat > pkg/mod.py <<'PY'
VALUE = sum(range(100))
PY
cat > pkg/sub/__init__.py <<'PY'
from ..mod import VALUE as V
DOUBLE = 2 * V
PY"
# The cached bytecode records the source's mtime: give the sources fixed times
# so both runs write the same .pyc files.
run 'find pkg -name "*.py" -exec touch -d "2022-03-04 05:06:07" {} +'
run "$PY -c 'import pkg, pkg.sub; print(pkg.VALUE, pkg.sub.DOUBLE)'"
run 'find pkg -name "*.pyc" | sort'
run "$PY -c 'import pkg.sub; print(pkg.sub.DOUBLE)'"    # from the cache this time
run "$PY -m compileall -q pkg . > /dev/null && $PY -m compileall -q -f --invalidation-mode checked-hash pkg && find . -name '*.pyc' | sort"
run "$PY -m py_compile pkg/mod.py && $PY - <<'PY'
import importlib.util, sys
sys.path.insert(0, '.')
print(importlib.util.cache_from_source('pkg/mod.py'))
import zipfile
with zipfile.ZipFile('pkg.zip', 'w') as z:
    z.writestr(zipfile.ZipInfo('zpkg/__init__.py', (2020, 1, 1, 0, 0, 0)), 'Z = 42\n')
sys.path.insert(0, 'pkg.zip')
import zpkg; print(zpkg.Z)
PY"
run "$PY - <<'PY'
import os
print(sorted(os.listdir('.')))
PY"
finish
