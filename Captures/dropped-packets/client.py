# Run by record.sh as: nbdsh -c "exec(open('client.py').read())" (handle h is implicit)
# 50 requests, one at a time, simple replies only: 24 WRITEs and 24 READs of 4-64 KiB, 2 FLUSHes.
import os
h.set_request_structured_replies(False)
h.connect_uri(os.environ["NBD_URI"])
print("size", h.get_size(), "structured", h.get_structured_replies_negotiated())
K = 1024
SIZES = [4, 8, 16, 32, 64, 8, 12, 64, 4, 24, 16, 8]         # KiB, cycled
n = 0
for i in range(24):
    size = SIZES[i % len(SIZES)] * K
    off = (i * 160 * K) % (4096 * K - 64 * K)                   # 160 KiB apart, 4 MiB disk
    data = bytes([0x10 + i]) * size                             # payload byte = 0x10 + i
    h.pwrite(data, off); n += 1
    print("pwrite", size, off, "ok")
    back = h.pread(size, off); n += 1
    print("pread", size, off, "ok" if back == data else "MISMATCH")
    if i in (11, 23):
        h.flush(); n += 1
        print("flush ok")
print("requests", n)
h.shutdown()                                                    # DISC
print("done")
