#!/usr/bin/python3
"""Debian's node-redis (Node.js) against a 3-node ringcache cluster: a second language's
Redis client, run by node_redis_client.js against every node's Redis-protocol port.

Usage: test_node_redis.py --ringcached PATH
Exit: 0 pass; 1 fail; 77 node or node-redis missing (skip; scripts/install-deps.sh
installs nodejs and node-redis).
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from ringcache_nodes import start_cluster, stop_cluster, wait_settled  # noqa: E402

# Debian installs Node modules here; a Node.js from elsewhere does not look there itself.
NODE_PATH = "/usr/share/nodejs"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ringcached", required=True)
    opts = ap.parse_args()
    node = shutil.which("node") or shutil.which("nodejs")
    env = dict(os.environ, NODE_PATH=NODE_PATH)
    if node is None or subprocess.run([node, "-e", "require('redis')"], env=env,
                                      capture_output=True).returncode != 0:
        print("SKIP: node or node-redis is not installed (scripts/install-deps.sh installs them)")
        return 77
    tmp = tempfile.mkdtemp(prefix="ringcache-node-redis-")
    procs, ports = start_cluster(opts.ringcached, tmp)
    try:
        wait_settled(ports)
        run = subprocess.run([node, os.path.join(HERE, "node_redis_client.js")] +
                             [str(p) for p in ports], env=env, timeout=60)
        code = run.returncode
    finally:
        stop_cluster(procs)
    if code == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("node logs in " + tmp)
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
