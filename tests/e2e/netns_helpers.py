"""A network namespace the test makes for itself, reachable from this one
over a veth pair, with one server process started inside it. Needs root
and iproute2 (tests that use it skip otherwise)."""

import contextlib
import os
import shutil
import socket
import subprocess
import threading

NEEDS = (os.geteuid() == 0 and shutil.which("ip") is not None,
         "needs root and iproute2 for a network namespace")


def ip(*args, check=True):
    return subprocess.run(["ip", *args], check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=10)


@contextlib.contextmanager
def veth_namespace(prefix, subnet_base, server_argv):
    """Yields {"addr", "link", "ns", "ns_link"}: the namespace's address,
    the veth end on this side and on the namespace's side. server_argv runs
    inside the namespace; "{addr}" in it is replaced by that address, and it
    must print "ready" once it listens."""
    tag = f"{os.getpid() % 100000}"
    ns, host_if, ns_if = f"{prefix}o{tag}", f"{prefix}{tag}a", f"{prefix}{tag}b"
    # A safety net under the veth's own route: if that route ever goes away
    # (veth deleted while sluice still reconnects), packets for the test
    # subnet are dropped here instead of following the default route.
    # Adding it also claims the subnet: tests running at the same time
    # (E2E_JOBS) get "File exists" and try the next one.
    subnet = None
    for i in range(50):
        cand = subnet_base + (os.getpid() + i) % 50
        if ip("route", "add", "blackhole", f"10.213.{cand}.0/30", "metric", "4000",
              check=False).returncode == 0:
            subnet = cand
            break
    assert subnet is not None, "no free 10.213.x.0/30 subnet for the test's namespace"
    host_ip, ns_ip = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
    proc = None
    try:
        ip("netns", "add", ns)
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", ns)
        ip("addr", "add", f"{host_ip}/30", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("netns", "exec", ns, "ip", "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        ip("netns", "exec", ns, "ip", "link", "set", ns_if, "up")
        ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        argv = [a.replace("{addr}", ns_ip) for a in server_argv]
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout.readline().strip() == "ready"
        yield {"addr": ns_ip, "link": host_if, "ns": ns, "ns_link": ns_if}
    finally:
        if proc:
            proc.kill()
            proc.wait(timeout=5)
        ip("link", "del", host_if, check=False)
        ip("netns", "del", ns, check=False)
        ip("route", "del", "blackhole", f"10.213.{subnet}.0/30", check=False)


def serve_forever(addr, port, handle):
    """For the server run inside the namespace: listen on addr:port, print
    "ready" (what veth_namespace waits for), and hand each connection to
    handle(conn) on its own thread."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(64)
    print("ready", flush=True)
    while True:
        conn, _ = ls.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()
