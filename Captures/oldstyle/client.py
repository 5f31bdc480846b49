# Run by record.sh as: nbdsh -c "exec(open('client.py').read())" (handle h is implicit)
import os
h.connect_uri(os.environ["NBD_URI"])
print("size", h.get_size(), "protocol", h.get_protocol(),
      "can_flush", h.can_flush(), "can_zero", h.can_zero(), "can_trim", h.can_trim())
def step(name, f):
    try:
        r = f()
        print(name, "ok")
        return r
    except nbd.Error as e:
        print(name, "error", e.errno, e.string)
pat = b"oldstyle" * 512                                   # 4096 bytes
step("pwrite", lambda: h.pwrite(pat, 8192))               # WRITE
buf = step("pread", lambda: h.pread(4096, 8192))          # READ
assert buf == pat
h.set_strict_mode(0)
step("zero", lambda: h.zero(65536, 65536))                # WRITE_ZEROES: nbdkit --oldstyle says EINVAL
h.shutdown()                                              # DISC, no FLUSH before it
print("done")
