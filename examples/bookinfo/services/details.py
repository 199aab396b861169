"""details: GET /details/{id}, cached in Redis (REDIS_HOST, REDIS_PORT): GET details:{id}, and
on a miss the record is made and SET."""
import json

import redis

from bookinfo import product_id, serve
from common import env

cache = redis.Redis(host=env("REDIS_HOST"), port=int(env("REDIS_PORT")), socket_timeout=5)


def details(path, _body):
    n = product_id(path)
    cached = cache.get(f"details:{n}")
    if cached is not None:
        return 200, json.loads(cached)
    book = {"id": n, "author": "William Shakespeare", "year": 1595, "type": "paperback",
            "pages": 200, "publisher": "PublisherA", "language": "English",
            "isbn_10": str(1234567890 + n)}
    cache.set(f"details:{n}", json.dumps(book))
    return 200, book


serve({("GET", "/details/"): details})
