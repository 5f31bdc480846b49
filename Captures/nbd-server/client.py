# Run by record.sh as: nbdsh -c "exec(open('client.py').read())" (handle h is implicit)
import os
h.connect_uri(os.environ["NBD_URI"])
print("size", h.get_size(), "structured", h.get_structured_replies_negotiated(),
      "flush", h.can_flush(), "fua", h.can_fua(), "trim", h.can_trim(), "zero", h.can_zero(),
      "fast_zero", h.can_fast_zero(), "df", h.can_df(), "cache", h.can_cache(), "multi_conn", h.can_multi_conn())
def step(name, f):
    try:
        r = f()
        print(name, "ok")
        return r
    except nbd.Error as e:
        print(name, "error", e.errno, e.string)
pat = b"nbd-server 3.24\n" * 256                               # 4096 bytes
step("pwrite", lambda: h.pwrite(pat, 0))                      # WRITE
step("pwrite fua", lambda: h.pwrite(pat, 4096, nbd.CMD_FLAG_FUA))
buf = step("pread", lambda: h.pread(8192, 0))                 # READ
assert buf == pat + pat
step("flush", lambda: h.flush())                              # FLUSH
step("trim", lambda: h.trim(65536, 65536))                    # TRIM
step("zero", lambda: h.zero(65536, 131072))                   # WRITE_ZEROES
h.set_strict_mode(0)
step("pread past end", lambda: h.pread(4096, 1048576))        # error reply
h.shutdown()
print("done")
