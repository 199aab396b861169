"""What the Bookinfo services need beyond the demo's helpers (examples/demo/common.py, which
images.sh copies into each image next to this file): to listen on every address of the
container, as its network peers reach it there, where `common.serve` listens on loopback only;
and to stop on SIGTERM, which the kernel does not deliver to a container's pid 1 that has no
handler for it (podman stop would wait for its timeout, then kill)."""
import http.server
import signal
import sys

import common

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


class _EveryAddress(http.server.ThreadingHTTPServer):
    def __init__(self, address, handler):
        super().__init__(("0.0.0.0", address[1]), handler)


def serve(handlers, port=9080):
    """`common.serve` on 0.0.0.0:`port`; never returns."""
    http.server.ThreadingHTTPServer = _EveryAddress  # the class common.serve instantiates
    common.serve(handlers, port)


def product_id(path):
    """The number at the end of `/<thing>/<id>`."""
    return int(path.rsplit("/", 1)[1])
