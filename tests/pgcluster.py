#!/usr/bin/python3
"""pgcluster - a throwaway PostgreSQL cluster for tests.

A private cluster made with initdb in a temporary directory, listening on a
free 127.0.0.1 port (and a unix socket in the same directory), with one role
per authentication method so every method can be exercised:

    user          password        pg_hba method
    iok_scram     scram-secret    scram-sha-256 (stored as SCRAM)
    iok_md5       md5-secret      md5 (stored as md5)
    iok_password  clear-secret    password (cleartext)
    iok_trust     -               trust
    postgres      -               trust (superuser, for test administration)

When run as root the cluster runs as the `postgres` OS user (postgres refuses
to run as root): the directory is chowned to it and commands go through
runuser.

As a module:
    from pgcluster import Cluster
    with Cluster() as pg:
        pg.url("iok_scram")            # postgresql://iok_scram:...@127.0.0.1:P/postgres
        pg.psql("SELECT 1")            # runs as the superuser, returns stdout

A streaming standby of a running cluster (pg_basebackup -R, hot standby,
in its own temporary directory, on its own free port):
    sb = pg.make_standby()             # a Cluster, in recovery
    sb.promote()                       # pg_ctl promote: now a primary

As a command:
    pgcluster.py run -- CMD ARGS...    # start, run CMD with IOK_PG_* set, stop
    pgcluster.py run --standby -- CMD  # the same with a standby too
                                       # (IOK_PG_STANDBY_PORT, _DIR)
    pgcluster.py promote DIR           # promote the standby in DIR
    pgcluster.py start DIR             # start in DIR (kept), print the URLs
    pgcluster.py stop DIR              # stop the cluster in DIR
    pgcluster.py restart DIR PORT      # crash-stop and start again on PORT

Environment given to CMD by `run` (and printed by `start`):
    IOK_PG_URL (the scram user), IOK_PG_URL_SCRAM, IOK_PG_URL_MD5,
    IOK_PG_URL_PASSWORD, IOK_PG_URL_TRUST, IOK_PG_URL_ADMIN, IOK_PG_HOST,
    IOK_PG_PORT, IOK_PG_SOCKDIR, IOK_PG_BIN.
"""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

USERS = {
    # name: (password, pg_hba method, password_encryption used to store it)
    "iok_scram": ("scram-secret", "scram-sha-256", "scram-sha-256"),
    "iok_md5": ("md5-secret", "md5", "md5"),
    "iok_password": ("clear-secret", "password", "scram-sha-256"),
    "iok_trust": (None, "trust", None),
}
ADMIN = "postgres"


def find_bindir():
    """The directory holding initdb/pg_ctl/postgres (newest installed)."""
    env = os.environ.get("IOK_PG_BIN")
    if env:
        return env
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(d, "initdb")):
            return d
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise RuntimeError("pgcluster: no PostgreSQL binaries (apt-get install postgresql)")


def available():
    try:
        find_bindir()
        return True
    except RuntimeError:
        return False


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, directory=None, port=None):
        self.bindir = find_bindir()
        self.owned_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="iok-pg-")
        self.data = os.path.join(self.dir, "data")
        self.sockdir = self.dir
        self.log = os.path.join(self.dir, "server.log")
        self.host = "127.0.0.1"
        self.port = port
        self.as_root = os.geteuid() == 0
        self.running = False

    # -- plumbing ---------------------------------------------------------
    def _cmd(self, argv, **kw):
        """Runs argv as the cluster's OS user; returns CompletedProcess."""
        if self.as_root:
            argv = ["runuser", "-u", "postgres", "--"] + argv
        # A sanitizer runtime preloaded into the test's interpreter, or the
        # caller's libpq settings (PGHOST, PGOPTIONS...), must not reach
        # initdb, the server or psql.
        env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("PG")}
        kw.setdefault("env", env)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        return subprocess.run(argv, **kw)

    def _bin(self, name):
        return os.path.join(self.bindir, name)

    def _check(self, r, what):
        if r.returncode != 0:
            raise RuntimeError("pgcluster: %s failed (%d): %s%s" % (what, r.returncode, r.stdout, r.stderr))
        return r.stdout

    # -- lifecycle --------------------------------------------------------
    def init(self):
        if os.path.exists(os.path.join(self.data, "PG_VERSION")):
            return
        if self.as_root:
            import pwd

            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o755)
        r = self._cmd([self._bin("initdb"), "-D", self.data, "-U", ADMIN, "--auth=trust",
                       "--no-sync", "-E", "UTF8", "--locale=C"])
        self._check(r, "initdb")
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write("\n# pgcluster.py\n"
                    "listen_addresses = '127.0.0.1'\n"
                    "unix_socket_directories = '%s'\n"
                    "password_encryption = 'scram-sha-256'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 50\nshared_buffers = 16MB\n"
                    "log_min_messages = warning\n" % self.sockdir)
        hba = ["local all all trust",
               "local replication %s trust" % ADMIN,
               "host all %s 127.0.0.1/32 trust" % ADMIN]
        for name, (_pw, method, _enc) in USERS.items():
            hba.append("host all %s 127.0.0.1/32 %s" % (name, method))
        hba.append("host all all 127.0.0.1/32 scram-sha-256")
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("\n".join(hba) + "\n")

    def start(self):
        self.init()
        self._start_server()
        self._create_roles()
        return self

    def make_standby(self):
        """A hot standby streaming from this (running) cluster: a base
        backup with recovery settings (-R), started on a free port.
        Returns its Cluster (the caller cleans it up)."""
        sb = Cluster()
        sb.standby_of = self
        try:
            if sb.as_root:
                import pwd

                pw = pwd.getpwnam("postgres")
                os.chown(sb.dir, pw.pw_uid, pw.pw_gid)
            os.chmod(sb.dir, 0o755)
            r = self._cmd([self._bin("pg_basebackup"), "-D", sb.data, "-h", self.sockdir,
                           "-p", str(self.port), "-U", ADMIN, "-R", "-X", "stream",
                           "--no-sync", "-c", "fast"])
            self._check(r, "pg_basebackup")
            with open(os.path.join(sb.data, "postgresql.conf"), "a") as f:
                f.write("\n# pgcluster.py standby\n"
                        "unix_socket_directories = '%s'\n"
                        "hot_standby = on\n" % sb.sockdir)
            sb._start_server()
        except BaseException:
            sb.cleanup()
            raise
        return sb

    def promote(self):
        """pg_ctl promote, waiting until the server accepts writes."""
        r = self._cmd([self._bin("pg_ctl"), "-D", self.data, "-w", "-t", "60", "promote"])
        self._check(r, "pg_ctl promote")

    def _start_server(self):
        for _attempt in range(5):
            port = self.port or free_port()
            r = self._cmd([self._bin("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60",
                           "-o", "-p %d" % port, "start"])
            if r.returncode == 0:
                self.port = port
                self.running = True
                return
            if self.port:
                break
        tail = ""
        if os.path.exists(self.log):
            with open(self.log) as f:
                tail = f.read()[-2000:]
        raise RuntimeError("pgcluster: server did not start: %s%s\n%s" % (r.stdout, r.stderr, tail))

    def _create_roles(self):
        sql = []
        for name, (pw, _method, enc) in USERS.items():
            sql.append("DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname='%s') "
                       "THEN CREATE ROLE %s LOGIN; END IF; END$$;" % (name, name))
            if pw is not None:
                sql.append("SET password_encryption = '%s';" % enc)
                sql.append("ALTER ROLE %s PASSWORD '%s';" % (name, pw))
            # pg_stat_activity / pg_terminate_backend of other roles in tests
            sql.append("GRANT pg_read_all_stats, pg_signal_backend TO %s;" % name)
        self.psql("\n".join(sql))

    def stop(self):
        if self.running or os.path.exists(os.path.join(self.data, "postmaster.pid")):
            self._cmd([self._bin("pg_ctl"), "-D", self.data, "-m", "immediate", "-w", "stop"])
            self.running = False

    def restart(self):
        """Stops (immediately, as a crash would) and starts on the same port."""
        self.stop()
        r = self._cmd([self._bin("pg_ctl"), "-D", self.data, "-l", self.log, "-w", "-t", "60",
                       "-o", "-p %d" % self.port, "start"])
        self._check(r, "pg_ctl start")
        self.running = True

    def cleanup(self):
        self.stop()
        if self.owned_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()  # no half-made cluster left behind
            raise

    def __exit__(self, *exc):
        self.cleanup()

    # -- use --------------------------------------------------------------
    def url(self, user="iok_scram", database="postgres", password=None, **params):
        """A postgresql:// URL for user over TCP (password from the table
        unless given; params become the query string)."""
        if password is None and user in USERS:
            password = USERS[user][0]
        auth = urllib.parse.quote(user, safe="")
        if password:
            auth += ":" + urllib.parse.quote(password, safe="")
        q = ("?" + urllib.parse.urlencode(params)) if params else ""
        return "postgresql://%s@%s:%d/%s%s" % (auth, self.host, self.port, database, q)

    def unix_url(self, user="iok_trust", database="postgres", **params):
        """A URL over the unix socket (libpq's ?host=/dir form)."""
        params = dict(params)
        params["host"] = self.sockdir
        params["port"] = str(self.port)
        return "postgresql://%s@/%s?%s" % (user, database, urllib.parse.urlencode(params))

    def psql(self, sql, database="postgres"):
        """Runs sql as the superuser over the unix socket; returns stdout
        (unaligned, tuples only)."""
        r = self._cmd([self._bin("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                       "-h", self.sockdir, "-p", str(self.port), "-U", ADMIN, "-d", database],
                      input=sql)
        return self._check(r, "psql")

    def env(self):
        e = {
            "IOK_PG_URL": self.url("iok_scram"),
            "IOK_PG_URL_SCRAM": self.url("iok_scram"),
            "IOK_PG_URL_MD5": self.url("iok_md5"),
            "IOK_PG_URL_PASSWORD": self.url("iok_password"),
            "IOK_PG_URL_TRUST": self.url("iok_trust"),
            "IOK_PG_URL_ADMIN": self.url(ADMIN),
            "IOK_PG_HOST": self.host,
            "IOK_PG_PORT": str(self.port),
            "IOK_PG_SOCKDIR": self.sockdir,
            "IOK_PG_BIN": self.bindir,
            "IOK_PG_DIR": self.dir,
        }
        return e


def main(argv):
    if len(argv) >= 2 and argv[1] == "run":
        cmd = argv[2:]
        standby = bool(cmd) and cmd[0] == "--standby"
        if standby:
            cmd = cmd[1:]
        if cmd and cmd[0] == "--":
            cmd = cmd[1:]
        if not cmd:
            print("usage: pgcluster.py run [--standby] -- CMD ...", file=sys.stderr)
            return 2
        with Cluster() as pg:
            env = dict(os.environ)
            env.update(pg.env())
            if not standby:
                return subprocess.call(cmd, env=env)
            sb = pg.make_standby()
            try:
                env["IOK_PG_STANDBY_PORT"] = str(sb.port)
                env["IOK_PG_STANDBY_DIR"] = sb.dir
                return subprocess.call(cmd, env=env)
            finally:
                sb.cleanup()
    if len(argv) == 3 and argv[1] == "promote":
        pg = Cluster(os.path.abspath(argv[2]))
        pg.running = True
        pg.promote()
        return 0
    if len(argv) == 3 and argv[1] == "start":
        os.makedirs(argv[2], exist_ok=True)
        pg = Cluster(os.path.abspath(argv[2])).start()
        for k, v in pg.env().items():
            print("%s=%s" % (k, v))
        return 0
    if len(argv) == 3 and argv[1] == "stop":
        pg = Cluster(os.path.abspath(argv[2]))
        pg.running = True
        pg.stop()
        return 0
    if len(argv) == 4 and argv[1] == "restart":
        pg = Cluster(os.path.abspath(argv[2]), port=int(argv[3]))
        pg.running = True
        pg.restart()
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
