"""pricing: a gRPC service (grpcio over HTTP/2 cleartext), `shop.Pricing/Quote`: the price of
the item whose id the request carries. Messages are JSON bytes rather than protobuf, so the
demo needs no generated code; gRPC frames them the same."""
import json
from concurrent import futures

import grpc


def quote(request, _context):
    item = json.loads(request)["item"]
    return json.dumps({"item": item, "price": round(2.5 + item * 0.5, 2)}).encode()


server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
    "shop.Pricing", {"Quote": grpc.unary_unary_rpc_method_handler(quote)}),))
port = server.add_insecure_port("127.0.0.1:0")
server.start()
print(port, flush=True)
server.wait_for_termination()
