#!/usr/bin/env bash
# Writes bad inputs for `adi classify` tests into DIR and prints their paths, one per line.
#
# Usage: testdata/bad/make_bad_inputs.sh [DIR]     (DIR defaults to a new temp dir; the caller
#                                                   removes it)
#   empty.bin           0 bytes
#   truncated.pcap      testdata/captures/http_default_ports.pcap cut in the middle of a record
#   corrupt_record.pcap the same capture with the second record header's caplen set to 0xFFFFFFFF
#   random_1g.bin       random bytes from /dev/urandom: 1 GiB with ADI_BIG=1, else 16 MiB (the
#                       name stays the same so tests need not care)
#
# truncated.pcap and corrupt_record.pcap are deterministic and also committed next to this
# script, so tests can use them without running it. Needs bash, python3 and coreutils; no root.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$HERE/../captures/http_default_ports.pcap
OUT=${1:-$(mktemp -d "${TMPDIR:-/tmp}/adi-bad.XXXXXX")}
mkdir -p "$OUT"

[[ -f $SRC ]] || { echo "make_bad_inputs.sh: missing source capture $SRC" >&2; exit 1; }

: >"$OUT/empty.bin"

python3 - "$SRC" "$OUT/truncated.pcap" "$OUT/corrupt_record.pcap" <<'EOF'
import struct, sys

src, truncated_path, corrupt_path = sys.argv[1:4]
data = open(src, "rb").read()

# Classic pcap: 24-byte global header; magic 0xa1b2c3d4 (us) or 0xa1b23c4d (ns), in the
# writer's byte order. Each record: ts_sec, ts_frac, caplen, origlen (4 x u32), then caplen bytes.
magic_le = struct.unpack("<I", data[:4])[0]
if magic_le in (0xA1B2C3D4, 0xA1B23C4D):
    order = "<"
elif struct.unpack(">I", data[:4])[0] in (0xA1B2C3D4, 0xA1B23C4D):
    order = ">"
else:
    sys.exit("make_bad_inputs.sh: %s is not a classic pcap" % src)

records = []  # (offset of record header, caplen)
off = 24
while off + 16 <= len(data):
    caplen = struct.unpack(order + "I", data[off + 8 : off + 12])[0]
    records.append((off, caplen))
    off += 16 + caplen
if len(records) < 4:
    sys.exit("make_bad_inputs.sh: %s has too few records" % src)

# Cut the fourth record (the first one carrying data after the handshake) in the middle of
# its packet bytes: the header promises caplen bytes that are not all there.
rec_off, rec_len = records[3]
cut = rec_off + 16 + rec_len // 2
open(truncated_path, "wb").write(data[:cut])

# Second record header: caplen is the third u32 (bytes 8..12 of the header).
patched = bytearray(data)
second = records[1][0]
struct.pack_into(order + "I", patched, second + 8, 0xFFFFFFFF)
open(corrupt_path, "wb").write(bytes(patched))
EOF

if [[ ${ADI_BIG:-0} == 1 ]]; then
  head -c $((1024 * 1024 * 1024)) /dev/urandom >"$OUT/random_1g.bin"
else
  head -c $((16 * 1024 * 1024)) /dev/urandom >"$OUT/random_1g.bin"
fi

for f in empty.bin truncated.pcap corrupt_record.pcap random_1g.bin; do
  echo "$OUT/$f"
done
