# Run by record.sh as: nbdsh -c "exec(open('client.py').read())" (handle h is implicit)
# One WRITE, then a pause of at least 2 s during which record.sh starts tcpdump
# (handshake: client touches READY_FILE, waits for GO_FILE), then 21 mixed requests.
import os, time
h.add_meta_context("base:allocation")
h.connect_uri(os.environ["NBD_URI"])
print("size", h.get_size(), "structured", h.get_structured_replies_negotiated(),
      "base:allocation", h.can_meta_context("base:allocation"))
def step(name, f):
    try:
        r = f()
        print(time.strftime("%H:%M:%S"), "%.6f" % time.time(), name, "ok")
        return r
    except nbd.Error as e:
        print(time.strftime("%H:%M:%S"), "%.6f" % time.time(), name, "error", e.errno, e.string)
extents = []
def ext(metacontext, offset, entries, err):
    extents.append((metacontext, offset, list(entries), err))
    return 0
K = 1024
pat = lambda n, b: bytes([b]) * n
step("pwrite 4K@0 (before the capture)", lambda: h.pwrite(pat(4 * K, 0x11), 0))
t0 = time.time()
open(os.environ["READY_FILE"], "w").close()
for _ in range(300):                                   # at most 30 s
    if os.path.exists(os.environ["GO_FILE"]):
        break
    time.sleep(0.1)
time.sleep(max(0.0, 2.0 - (time.time() - t0)))         # sleep at least 2 s in total
print("paused %.3f s" % (time.time() - t0))
step("pwrite 16K@64K", lambda: h.pwrite(pat(16 * K, 0x22), 64 * K))
step("pread 4K@0", lambda: h.pread(4 * K, 0))
step("pwrite 4K@128K FUA", lambda: h.pwrite(pat(4 * K, 0x33), 128 * K, nbd.CMD_FLAG_FUA))
step("zero 64K@256K", lambda: h.zero(64 * K, 256 * K))
step("zero 64K@320K FAST_ZERO", lambda: h.zero(64 * K, 320 * K, nbd.CMD_FLAG_FAST_ZERO))
step("zero 32K@384K NO_HOLE", lambda: h.zero(32 * K, 384 * K, nbd.CMD_FLAG_NO_HOLE))
step("pread 16K@64K", lambda: h.pread(16 * K, 64 * K))
step("block_status 1M@0", lambda: h.block_status(1024 * K, 0, ext))
step("trim 4K@512K", lambda: h.trim(4 * K, 512 * K))
step("pwrite 8K@600K", lambda: h.pwrite(pat(8 * K, 0x44), 600 * K))
step("flush", lambda: h.flush())
step("pread 8K@600K", lambda: h.pread(8 * K, 600 * K))
step("block_status 1M@0 REQ_ONE", lambda: h.block_status(1024 * K, 0, ext, nbd.CMD_FLAG_REQ_ONE))
step("pwrite 4K@700K", lambda: h.pwrite(pat(4 * K, 0x55), 700 * K))
step("zero 4K@704K", lambda: h.zero(4 * K, 704 * K))
step("pread 64K@256K", lambda: h.pread(64 * K, 256 * K))
step("cache 64K@0", lambda: h.cache(64 * K, 0))
step("pwrite 32K@768K", lambda: h.pwrite(pat(32 * K, 0x66), 768 * K))
step("flush", lambda: h.flush())
step("pread 4K@768K", lambda: h.pread(4 * K, 768 * K))
step("block_status 256K@768K", lambda: h.block_status(256 * K, 768 * K, ext))
print("extents", extents)
h.shutdown()                                            # DISC
print("done")
