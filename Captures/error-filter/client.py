# Run by record.sh as: nbdsh -c "exec(open('client.py').read())" (handle h is implicit)
import os
h.connect_uri(os.environ["NBD_URI"])
print("size", h.get_size(), "structured", h.get_structured_replies_negotiated())
def step(name, f):
    try:
        f()
        print(name, "ok")
    except nbd.Error as e:
        print(name, "error", e.errno)
for i in range(10):
    buf = bytes([i + 1]) * 4096
    step("pwrite %d" % i, lambda: h.pwrite(buf, i * 4096))
    step("pread %d" % i, lambda: h.pread(4096, i * 4096))
step("zero", lambda: h.zero(65536, 65536))
step("trim", lambda: h.trim(65536, 131072))
step("flush", lambda: h.flush())
h.shutdown()
print("done")
