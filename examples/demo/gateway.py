"""gateway: GET /products/{id} joins catalog and reviews; POST /orders forwards to orders."""
from common import call, env, serve


def product(path, _body):
    n = path.rsplit("/", 1)[1]
    _, item = call("GET", f"{env('CATALOG_URL')}/items/{n}")
    _, rev = call("GET", f"{env('REVIEWS_URL')}/reviews/{n}")
    return 200, {"item": item, "reviews": rev["reviews"]}


def order(_path, body):
    status, out = call("POST", f"{env('ORDERS_URL')}/orders", body)
    return status, out


serve({("GET", "/products/"): product, ("POST", "/orders"): order})
