"""Load and latency of the Gradio Space through gradio_client (a script, not a test).

    python bench/space_load.py                                # 20 clients x 5 requests, 1 MP photos
    python bench/space_load.py --clients 1 --requests 3 --megapixels 12

Starts `space/app.py` on 127.0.0.1 (or uses --url), sends real photos resized to the asked
size, checks every answer (a colorized image of the input's size) and prints the median
and 95th-percentile latency from upload to result.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
from run import make_photo  # the same real photo, resized, as the main benchmark (bench/ is on the path as the script's folder)


def start_app() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, str(ROOT / "space" / "app.py"), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(240):
        try:
            urllib.request.urlopen(url, timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit("the app did not start")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=None, help="A running app; default: start space/app.py on a free port.")
    parser.add_argument("--clients", type=int, default=20, help="Concurrent gradio_client clients.")
    parser.add_argument("--requests", type=int, default=5, help="Requests per client.")
    parser.add_argument("--megapixels", type=float, default=1.0, help="Size of the test photo.")
    parser.add_argument("--size", type=int, default=256, help="Working resolution sent with each request.")
    parser.add_argument("--json", default=None, help="Also write the figures to this JSON file.")
    args = parser.parse_args()

    from gradio_client import Client, handle_file

    proc = None
    url = args.url
    if url is None:
        proc, url = start_app()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            photo = make_photo(args.megapixels, Path(tmp))
            size = Image.open(photo).size
            latencies: list[float] = []
            failures: list[str] = []
            lock = threading.Lock()

            def client_loop(index: int) -> None:
                client = Client(url, verbose=False)
                for _ in range(args.requests):
                    start = time.perf_counter()
                    try:
                        _, download, _ = client.predict(handle_file(str(photo)), args.size, 1.0, "default (ours)", api_name="/colorize")
                        elapsed = time.perf_counter() - start
                        ok = Image.open(download).size == size
                    except Exception as error:  # a dropped or failed request is what this script counts
                        with lock:
                            failures.append(f"client {index}: {type(error).__name__}: {error}")
                        continue
                    with lock:
                        (latencies.append(elapsed) if ok else failures.append(f"client {index}: wrong size"))

            wall = time.perf_counter()
            threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - wall
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)

    total = args.clients * args.requests
    result = {
        "photo": f"{size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.2f} MP)", "clients": args.clients, "requests": total,
        "answered_correctly": len(latencies), "failed": len(failures), "wall_s": round(wall, 2),
        "median_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "max_s": round(max(latencies), 3) if latencies else None, "cpu_count": os.cpu_count(),
    }
    print(f"{result['clients']} clients x {args.requests} requests, photo {result['photo']}: "
          f"{result['answered_correctly']}/{total} answered correctly, {result['failed']} failed, wall {result['wall_s']} s")
    print(f"latency upload->result: median {result['median_s']} s, p95 {result['p95_s']} s, max {result['max_s']} s")
    for failure in failures[:10]:
        print("  failure:", failure)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
