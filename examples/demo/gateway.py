"""gateway: GET /products/{id} joins catalog, reviews and the price from pricing (gRPC);
POST /orders forwards to orders."""
import json

import grpc

from common import call, env, serve

# One HTTP/2 connection, opened at the first call.
quote = grpc.insecure_channel(env("PRICING_ADDR")).unary_unary("/shop.Pricing/Quote")


def product(path, _body):
    n = path.rsplit("/", 1)[1]
    _, item = call("GET", f"{env('CATALOG_URL')}/items/{n}")
    _, rev = call("GET", f"{env('REVIEWS_URL')}/reviews/{n}")
    price = json.loads(quote(json.dumps({"item": int(n)}).encode(), timeout=10))
    return 200, {"item": item, "reviews": rev["reviews"], "price": price["price"]}


def order(_path, body):
    status, out = call("POST", f"{env('ORDERS_URL')}/orders", body)
    return status, out


serve({("GET", "/products/"): product, ("POST", "/orders"): order})
