"""loadgen: rounds of products over 200 distinct ids, 20 orders and one cache clear, for
DURATION seconds (at least one round; default: one), then counts what was stored in Redis and
PostgreSQL and exits, printing `orders stored: N in redis, M in postgres`."""
import os
import socket
import time

import pg8000.native

from common import call, env

deadline = time.monotonic() + float(os.environ.get("DURATION", "0"))
orders = 0
while orders == 0 or time.monotonic() < deadline:
    for i in range(200):
        status, _ = call("GET", f"{env('GATEWAY_URL')}/products/{i}")
        assert status == 200, status
    for i in range(20):
        status, _ = call("POST", f"{env('GATEWAY_URL')}/orders", {"item": i, "note": "demo"})
        assert status == 201, status
        orders += 1
    assert call("DELETE", f"{env('REVIEWS_URL')}/reviews/cache")[0] == 204
    if time.monotonic() < deadline:
        time.sleep(0.5)
r = socket.create_connection((env("REDIS_HOST"), int(env("REDIS_PORT"))))
# The logger stores asynchronously: ask until every order is there (at most 10 s).
for _ in range(100):
    r.sendall(b"*2\r\n$4\r\nLLEN\r\n$6\r\norders\r\n")
    stored = int(r.recv(100).decode().strip()[1:])
    if stored >= orders:
        break
    time.sleep(0.1)
db = pg8000.native.Connection(env("PGUSER"), host=env("PGHOST"), port=int(env("PGPORT")),
                              password=env("PGPASSWORD"), database=env("PGDATABASE"))
rows = db.run("SELECT count(*) FROM orders WHERE channel = 'web' AND item < 1000")
print(f"orders stored: {stored} in redis, {rows[0][0]} in postgres", flush=True)
