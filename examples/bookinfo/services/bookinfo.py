"""What the Bookinfo services need beyond the demo's helpers (examples/demo/common.py, which
images.sh copies into each image next to this file): to listen on every address of the
container, as its network peers reach it there; and to stop on SIGTERM, which the kernel does
not deliver to a container's pid 1 that has no handler for it (podman stop would wait for its
timeout, then kill)."""
import signal
import sys

import common

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def serve(handlers, port=9080):
    """`common.serve` on 0.0.0.0:`port`; never returns."""
    common.serve(handlers, port, host="0.0.0.0")


def product_id(path):
    """The number at the end of `/<thing>/<id>`."""
    return int(path.rsplit("/", 1)[1])
