"""productpage: GET /productpage/{id} returns the book's details and reviews, each asked of
its own service (DETAILS_URL, REVIEWS_URL)."""
from bookinfo import product_id, serve
from common import call, env


def productpage(path, _body):
    n = product_id(path)
    _, details = call("GET", f"{env('DETAILS_URL')}/details/{n}")
    _, reviews = call("GET", f"{env('REVIEWS_URL')}/reviews/{n}")
    return 200, {"id": n, "details": details, "reviews": reviews["reviews"]}


serve({("GET", "/productpage/"): productpage})
