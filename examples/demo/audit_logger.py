"""audit-logger: every order published on NATS is appended to a Redis list."""
import socket

from common import env

host, port = env("NATS_URL").split("//")[1].split(":")
nats = socket.create_connection((host, int(port)))
nf = nats.makefile("rb")
nf.readline()  # INFO
nats.sendall(b'CONNECT {"verbose":false,"name":"audit-logger"}\r\nSUB orders.* 1\r\nPING\r\n')
while not nf.readline().startswith(b"PONG"):
    pass
redis = socket.create_connection((env("REDIS_HOST"), int(env("REDIS_PORT"))))
rf = redis.makefile("rb")
print("ready", flush=True)
while True:
    line = nf.readline()
    if not line:
        break
    if line.startswith(b"PING"):
        nats.sendall(b"PONG\r\n")
        continue
    if not line.startswith(b"MSG"):
        continue
    size = int(line.split()[-1])
    payload = nf.read(size + 2)[:size]
    redis.sendall(b"*3\r\n$5\r\nRPUSH\r\n$6\r\norders\r\n$%d\r\n%s\r\n" % (len(payload), payload))
    rf.readline()
