"""ratings: GET /ratings/{id}, the stars each reviewer gave, read from PostgreSQL (PGHOST,
PGPORT, PGUSER, PGPASSWORD, PGDATABASE) over one connection opened at start, which also creates
and fills the table."""
import threading
import time

import pg8000.native

from bookinfo import product_id, serve
from common import env


def connect():
    """The connection, once PostgreSQL accepts it (it may still be starting): 30 s at most."""
    for _ in range(60):
        try:
            return pg8000.native.Connection(
                env("PGUSER"), host=env("PGHOST"), port=int(env("PGPORT")),
                password=env("PGPASSWORD"), database=env("PGDATABASE"),
                application_name="ratings")
        except (OSError, pg8000.native.Error):
            time.sleep(0.5)
    raise SystemExit("ratings: PostgreSQL did not accept a connection in 30 s")


db = connect()
db.run("CREATE TABLE IF NOT EXISTS ratings (product_id int, reviewer text, stars int, "
       "PRIMARY KEY (product_id, reviewer))")
for product in range(10):
    for reviewer, stars in (("reviewer1", 5 - product % 2), ("reviewer2", 4 - product % 3)):
        db.run("INSERT INTO ratings VALUES (:p, :r, :s) ON CONFLICT DO NOTHING",
               p=product, r=reviewer, s=stars)
lock = threading.Lock()  # one connection, many request threads


def ratings(path, _body):
    n = product_id(path)
    with lock:
        rows = db.run("SELECT reviewer, stars FROM ratings WHERE product_id = :id "
                      "ORDER BY reviewer", id=n)
    return 200, {"id": n, "ratings": {reviewer: stars for reviewer, stars in rows}}


serve({("GET", "/ratings/"): ratings})
