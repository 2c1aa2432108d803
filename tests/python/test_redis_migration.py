"""Issue 9, item 7: a program written for redis.asyncio (pub/sub, a
pipeline with a transaction, WATCH, a Lua script, a lock, SCAN) runs on
iok.redis with only its import line changed.  The same file runs first on
redis-py itself (when installed), which shows it is a real redis.asyncio
program."""
import os
import subprocess
import sys

import pytest

from conftest import DEADLINE, python_env
from redis_fixtures import need_redis, redis_module_server, redis_server  # noqa: F401

APP = os.path.join(os.path.dirname(__file__), "migration", "redis_asyncio_app.py")
ORIGINAL = "import redis.asyncio as redis\n"
PORTED = "import iok.redis.asyncio as redis\n"


def _run(path, url):
    return subprocess.run([sys.executable, path, url], capture_output=True, text=True,
                          timeout=DEADLINE, env=python_env())


def _has_redis_py():
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        return False
    return True


@need_redis
def test_redis_asyncio_program_runs_with_redis_py(redis_server):
    if not _has_redis_py():
        pytest.skip("redis-py (python3-redis) is not installed")
    p = _run(APP, redis_server.url(db=5))
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


@need_redis
def test_redis_asyncio_program_runs_on_iok_by_changing_the_import(redis_server, tmp_path):
    with open(APP) as f:
        src = f.read()
    assert src.count(ORIGINAL) == 1
    ported = src.replace(ORIGINAL, PORTED)
    # exactly one line differs
    diff = [(a, b) for a, b in zip(src.splitlines(), ported.splitlines()) if a != b]
    assert diff == [(ORIGINAL.strip(), PORTED.strip())]
    path = tmp_path / "app_on_iok.py"
    path.write_text(ported)
    p = _run(str(path), redis_server.url(db=6))
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
