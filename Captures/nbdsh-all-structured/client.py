# Run by record.sh as: nbdsh -c "exec(open('client.py').read())" (handle h is implicit)
import os
uri = os.environ["NBD_URI"]
STRUCTURED = os.environ.get("STRUCTURED", "1") == "1"
if not STRUCTURED:
    h.set_request_structured_replies(False)
else:
    h.add_meta_context("base:allocation")
h.connect_uri(uri)
print("size", h.get_size(), "structured", h.get_structured_replies_negotiated())
if STRUCTURED:
    print("base:allocation", h.can_meta_context("base:allocation"))
def step(name, f):
    try:
        r = f()
        print(name, "ok")
        return r
    except nbd.Error as e:
        print(name, "error", e.errno, e.string)

pat = bytes(range(256)) * 16                           # 4096 bytes
step("pwrite", lambda: h.pwrite(pat, 0))               # WRITE
step("pwrite fua", lambda: h.pwrite(pat, 4096, nbd.CMD_FLAG_FUA))   # WRITE fua
buf = step("pread", lambda: h.pread(8192, 0))          # READ
assert buf == pat + pat
if STRUCTURED:
    chunks = []
    def chunk(subbuf, offset, status, error):
        chunks.append((offset, len(subbuf), status, error))
        return 0
    step("pread_structured df", lambda: h.pread_structured(8192, 0, chunk, nbd.CMD_FLAG_DF))
    print("chunks", chunks)
step("flush", lambda: h.flush())                        # FLUSH
step("trim", lambda: h.trim(4096, 65536))               # TRIM
step("zero", lambda: h.zero(65536, 131072))             # WRITE_ZEROES
step("zero no_hole", lambda: h.zero(65536, 196608, nbd.CMD_FLAG_NO_HOLE))
step("zero fast", lambda: h.zero(65536, 262144, nbd.CMD_FLAG_FAST_ZERO))
step("zero fast|no_hole", lambda: h.zero(65536, 327680, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE))
step("cache", lambda: h.cache(65536, 0))               # CACHE
if STRUCTURED:
    extents = []
    def ext(metacontext, offset, entries, err):
        extents.append((metacontext, offset, list(entries), err))
        return 0
    step("block_status", lambda: h.block_status(1048576, 0, ext))
    step("block_status req_one", lambda: h.block_status(1048576, 0, ext, nbd.CMD_FLAG_REQ_ONE))
    print("extents", extents)
h.set_strict_mode(0)
step("pread past end", lambda: h.pread(4096, 1048576))  # error reply (EINVAL)
h.shutdown()                                            # DISC
print("done")
