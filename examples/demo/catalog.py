"""catalog: GET /items/{id} -> the item."""
from common import serve


def item(path, _body):
    n = int(path.rsplit("/", 1)[1])
    return 200, {"id": str(n), "name": f"item {n}", "price": 2.5 + n, "tags": ["demo"]}


serve({("GET", "/items/"): item})
