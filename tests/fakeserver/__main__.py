"""``python -m tests.fakeserver --port N``: the fake provider server as its own process.

Benchmarks and manual CLI runs point the SDKs at it with ``OPENAI_BASE_URL``,
``ANTHROPIC_BASE_URL`` and ``GOOGLE_GEMINI_BASE_URL`` (printed on start).
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from tests.fakeserver.server import FakeServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakeserver", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: a free one)")
    parser.add_argument("--zero-latency", action="store_true",
                        help="record no requests and add no delay (for benchmarks)")
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0, help="delay between streamed events")
    args = parser.parse_args(argv)
    server = FakeServer(host=args.host, port=args.port, record=not args.zero_latency,
                        chunk_delay_s=0.0 if args.zero_latency else args.chunk_delay_ms / 1000.0)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    print(f"READY {server.url}", flush=True)
    for name, value in server.env().items():
        print(f"{name}={value}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
