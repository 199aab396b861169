"""orders: POST /orders asks inventory (HTTPS) whether the item is in stock, stores the order
in PostgreSQL and publishes it on NATS (`orders.created`), over connections opened at start."""
import json
import socket
import threading

import pg8000.native

from common import call, env, serve

db = pg8000.native.Connection(env("PGUSER"), host=env("PGHOST"), port=int(env("PGPORT")),
                              password=env("PGPASSWORD"), database=env("PGDATABASE"),
                              application_name="orders")
db.run("CREATE TABLE IF NOT EXISTS orders (id serial, item int, channel text)")
host, port = env("NATS_URL").split("//")[1].split(":")
nats = socket.create_connection((host, int(port)))
nats.makefile("rb").readline()  # INFO
nats.sendall(b'CONNECT {"verbose":false,"name":"orders"}\r\n')
lock = threading.Lock()


def create(_path, body):
    status, stock = call("GET", f"{env('INVENTORY_URL')}/stock/{body['item']}")
    assert status == 200 and stock["item"] == body["item"], (status, stock)
    with lock:
        rows = db.run("INSERT INTO orders (item, channel) VALUES (:item, 'web') RETURNING id",
                      item=body["item"])
        payload = json.dumps({"id": rows[0][0], "item": body["item"]}).encode()
        nats.sendall(b"PUB orders.created %d\r\n%s\r\n" % (len(payload), payload))
    return 201, {"status": "accepted", "id": rows[0][0]}


serve({("POST", "/orders"): create})
