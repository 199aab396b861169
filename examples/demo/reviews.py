"""reviews: GET /reviews/{id} (two shapes: with reviews, or none yet and a note),
DELETE /reviews/cache (no body)."""
from common import serve


def reviews(path, _body):
    n = int(path.rsplit("/", 1)[1])
    if n % 2 == 0:
        return 200, {"id": n, "reviews": [{"reviewer": "ana", "stars": 4, "text": "good"}]}
    return 200, {"id": n, "reviews": [], "note": "no reviews yet"}


def clear(_path, _body):
    return 204, None


serve({("GET", "/reviews/"): reviews, ("DELETE", "/reviews/cache"): clear})
