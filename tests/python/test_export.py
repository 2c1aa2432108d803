"""Export from the kernel thread while the Python main thread spins holding
the GIL: the Prometheus exposition, read by prometheus_client's own text
parser (HELP/TYPE, counters, gauges, histogram buckets), and the statsd
push received on a UDP socket of the test.  Bad HTTP requests get a 4xx."""
import os
import socket
import urllib.error
import urllib.request

import pytest

import iok
from conftest import DEADLINE, free_tcp_port, popen_python

parser = pytest.importorskip("prometheus_client.parser",
                             reason="python3-prometheus-client not installed")

# Answers 50 requests (latency samples), leaves one unanswered, bumps app
# counters, then spins in pure Python until killed.
SPINNER = r"""
import sys
import iok
metrics_url, statsd_url, url = sys.argv[1:4]
iok.metrics_listen(metrics_url)
iok.statsd(statsd_url, period_ms=50, prefix="t")
rep = iok.Rep(listen=url)
req = iok.Req(dial=url)
for _ in range(50):
    req.send(b"q")
    rep.send(rep.recv())
    req.recv()
req.send(b"unanswered")
rep.recv()
iok.counter("jobs done").inc(42)
iok.timer("job time").record(3000)
iok.marker("spinning")
print("spinning", flush=True)

def busy_spin_holding_gil():
    while True:
        pass

busy_spin_holding_gil()
"""


@pytest.fixture
def spinner(tmp_path):
    port = free_tcp_port()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(DEADLINE)
    p = popen_python(SPINNER, "tcp://127.0.0.1:%d" % port,
                     "udp://127.0.0.1:%d" % udp.getsockname()[1], "ipc://%s/x.ipc" % tmp_path)
    try:
        line = p.stdout.readline()
        assert line == b"spinning\n", p.stderr.read()
        yield "http://127.0.0.1:%d" % port, udp
    finally:
        p.kill()
        p.wait()
        udp.close()


def test_prometheus_while_spinning(spinner):
    base, _ = spinner
    with urllib.request.urlopen(base + "/metrics", timeout=DEADLINE) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = r.read().decode()
    assert "# HELP iok_request_latency_seconds " in text
    assert "# TYPE iok_request_latency_seconds histogram" in text
    fams = {f.name: f for f in parser.text_string_to_metric_families(text)}

    def sample(fam, metric, **labels):
        for s in fams[fam].samples:
            if s.name == metric and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
        raise AssertionError("no %s %r in %s" % (metric, labels, fam))

    assert fams["iok_socket_tx_msgs"].type == "counter"
    assert sample("iok_socket_tx_msgs", "iok_socket_tx_msgs_total", pattern="req0") == 51
    assert sample("iok_socket_requests", "iok_socket_requests_total", pattern="req0") == 51
    assert sample("iok_socket_inflight", "iok_socket_inflight", pattern="req0") == 1
    assert fams["iok_socket_pipes"].type == "gauge"

    lat = fams["iok_request_latency_seconds"]
    assert lat.type == "histogram"
    buckets = [(float(s.labels["le"]), s.value) for s in lat.samples if s.name.endswith("_bucket")]
    assert buckets[-1] == (float("inf"), 50)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert sample("iok_request_latency_seconds", "iok_request_latency_seconds_count") == 50
    assert sample("iok_request_latency_seconds", "iok_request_latency_seconds_sum") > 0

    assert sample("iok_app_counter", "iok_app_counter_total", name="jobs done") == 42
    assert fams["iok_app_timer_seconds"].type == "histogram"
    assert sample("iok_app_timer_seconds", "iok_app_timer_seconds_count", name="job time") == 1
    assert sample("iok_app_timer_seconds", "iok_app_timer_seconds_bucket",
                  name="job time", le="4.096e-06") == 1
    assert sample("iok_app_marker_passes", "iok_app_marker_passes_total", name="spinning") == 1

    # A second scrape, still spinning: counters did not move, still parses.
    with urllib.request.urlopen(base + "/", timeout=DEADLINE) as r:
        again = {f.name for f in parser.text_string_to_metric_families(r.read().decode())}
    assert again == set(fams)


def test_statsd_while_spinning(spinner):
    _, udp = spinner
    seen = {}
    # Pushes every 50 ms; collect until the totals have all arrived.
    while not ("t.app.jobs_done" in seen and "t.socket.3.inflight" in seen):
        data, _ = udp.recvfrom(65536)
        assert len(data) <= 1400
        for line in data.decode().split("\n"):
            name, rest = line.split(":", 1)
            value, kind = rest.split("|")
            assert kind in ("c", "g"), line
            float(value)
            if kind == "c":
                seen[name] = seen.get(name, 0) + int(value)
            else:
                seen[name] = float(value)
    assert seen["t.app.jobs_done"] == 42
    assert seen["t.socket.3.inflight"] == 1
    assert seen["t.socket.3.tx_msgs"] == 51
    assert "t.socket.3.latency_p99_us" in seen


def test_bad_http_requests(tmp_path):
    port = free_tcp_port()
    iok.metrics_listen("tcp://127.0.0.1:%d" % port)
    try:
        with pytest.raises(iok.Busy):
            iok.metrics_listen("tcp://127.0.0.1:%d" % port)
        for raw, status in ((b"POST /metrics HTTP/1.1\r\n\r\n", b"405"),
                            (b"GET /nope HTTP/1.1\r\n\r\n", b"404"),
                            (b"\x00\xff garbage\r\n\r\n", b"400"),
                            (b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 3000, b"431")):
            s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
            try:
                s.sendall(raw)
            except OSError:
                pass
            data = b""
            try:
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
            except ConnectionResetError:
                pass
            s.close()
            assert data.startswith(b"HTTP/1.1 " + status), (raw[:20], data[:40])
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=DEADLINE) as r:
            assert r.status == 200
    finally:
        iok.metrics_listen(None)
    with pytest.raises(iok.AddressInvalid):
        iok.metrics_listen("tcp://localhost:%d" % port)
    with pytest.raises(iok.InvalidArgument):
        iok.statsd("udp://127.0.0.1:9", period_ms=1)
    iok.statsd(None)
