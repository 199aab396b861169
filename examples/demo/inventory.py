"""inventory: GET /stock/{item} over HTTPS -> whether the item is in stock (its certificate
and key from TLS_CERT and TLS_KEY)."""
from common import env, serve


def stock(path, _body):
    n = int(path.rsplit("/", 1)[1])
    return 200, {"item": n, "in_stock": n % 7 != 6}


serve({("GET", "/stock/"): stock}, tls=(env("TLS_CERT"), env("TLS_KEY")))
