#!/usr/bin/env python3
"""Init time of Lambda function binaries: process start -> first poll of the Runtime API.

Starts a minimal Lambda Runtime API on loopback that records when a function first asks for
the next invocation (GET /2018-06-01/runtime/invocation/next) and never answers it; starts the
binary with AWS_LAMBDA_RUNTIME_API pointing at it; the time from spawn to that first request is
one cold start. Repeats N times per binary and reports the median, with the stripped size.

Usage: init_time.py [--runs N] [--env KEY=VALUE ...] BINARY...
"""

import argparse
import http.server
import json
import os
import statistics
import subprocess
import sys
import threading
import time


class RuntimeApi(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.polled = threading.Event()
        # When the first poll arrived, taken in the request's own thread (not when the waiting
        # thread wakes up, which adds the interpreter's thread switch to the measurement).
        self.polled_at = None


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (the http.server API)
        if self.path.startswith("/2018-06-01/runtime/invocation/next"):
            if self.server.polled_at is None:
                self.server.polled_at = time.perf_counter()
            self.server.polled.set()
            # Hold the request: the function waits here as it would between invocations.
            time.sleep(5)
        self.send_response(204)
        self.end_headers()

    def do_POST(self):  # noqa: N802
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


def cold_start(binary, env, timeout=10.0):
    api = RuntimeApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    full_env = dict(os.environ)
    full_env.update(env)
    full_env["AWS_LAMBDA_RUNTIME_API"] = f"127.0.0.1:{api.server_address[1]}"
    start = time.perf_counter()
    proc = subprocess.Popen([binary], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not api.polled.wait(timeout):
            err = proc.stderr.read(2000).decode(errors="replace") if proc.poll() is not None else ""
            raise RuntimeError(f"{binary} did not poll the Runtime API within {timeout}s {err}")
        return api.polled_at - start
    finally:
        proc.kill()
        proc.wait()
        api.shutdown()
        api.server_close()


def stripped_size(binary):
    out = binary + ".stripped"
    subprocess.run(["strip", "-o", out, binary], check=True)
    size = os.path.getsize(out)
    os.remove(out)
    return size


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=21)
    p.add_argument("--env", action="append", default=[], help="KEY=VALUE for the function's environment")
    p.add_argument("--json", action="store_true")
    p.add_argument("binaries", nargs="+")
    a = p.parse_args()
    env = dict(kv.split("=", 1) for kv in a.env)
    env.setdefault("AWS_REGION", "us-east-1")
    env.setdefault("AWS_ACCESS_KEY_ID", "testing")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    env.setdefault("AWS_LAMBDA_FUNCTION_NAME", "bench")
    env.setdefault("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
    env.setdefault("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    rows = []
    for b in a.binaries:
        times = [cold_start(b, env) for _ in range(a.runs)]
        rows.append({
            "binary": os.path.basename(b),
            "median_ms": round(statistics.median(times) * 1000, 2),
            "p90_ms": round(sorted(times)[int(len(times) * 0.9) - 1] * 1000, 2),
            "runs": a.runs,
            "stripped_bytes": stripped_size(b),
        })
    if a.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{'binary':<28} {'median ms':>10} {'p90 ms':>8} {'stripped MB':>12}")
        for r in rows:
            print(f"{r['binary']:<28} {r['median_ms']:>10} {r['p90_ms']:>8} {r['stripped_bytes'] / 1e6:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
