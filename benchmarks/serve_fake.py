"""``python -m benchmarks.serve_fake``: the project's fake provider server with a listen backlog for 50+ clients.

``http.server``'s default backlog is 5 connections: with 50 requests opening
connections at once, the kernel drops the rest and the SDKs see resets. The
benchmarks need the server to keep up, not to model that limit.
"""
from __future__ import annotations

import socketserver
import sys

socketserver.TCPServer.request_queue_size = 512

from tests.fakeserver.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
