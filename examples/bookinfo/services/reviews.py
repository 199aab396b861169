"""reviews: GET /reviews/{id}, two reviews, each with its reviewer's stars from the ratings
service (RATINGS_URL)."""
from bookinfo import product_id, serve
from common import call, env

TEXTS = {
    "reviewer1": "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!",
    "reviewer2": "Absolutely fun and entertaining. The play lacks thematic depth when compared "
                 "to other plays by Shakespeare.",
}


def reviews(path, _body):
    n = product_id(path)
    _, ratings = call("GET", f"{env('RATINGS_URL')}/ratings/{n}")
    stars = ratings["ratings"]
    return 200, {"id": n, "reviews": [
        {"reviewer": who, "text": text, "stars": stars.get(who)} for who, text in TEXTS.items()
    ]}


serve({("GET", "/reviews/"): reviews})
