# Run by record.sh as: nbdsh -c "exec(open('client.py').read())" (handle h is implicit)
import os
h.set_opt_mode(True)
h.add_meta_context("base:allocation")
h.add_meta_context("qemu:allocation-depth")
h.connect_uri(os.environ["NBD_URI"])
listed = []
h.opt_list_meta_context(lambda name: listed.append(name) or 0)   # NBD_OPT_LIST_META_CONTEXT (queries: the two above)
print("list_meta_context", listed)
h.opt_go()                                                       # NBD_OPT_SET_META_CONTEXT + NBD_OPT_GO
print("size", h.get_size(), "structured", h.get_structured_replies_negotiated(),
      "base", h.can_meta_context("base:allocation"), "depth", h.can_meta_context("qemu:allocation-depth"))
ext = []
def extent(ctx, offset, entries, err):
    ext.append((ctx, offset, list(entries)))
    return 0
h.block_status(1 << 20, 0, extent)                               # BLOCK_STATUS whole disk, both contexts
h.block_status(1 << 20, 0, extent, nbd.CMD_FLAG_REQ_ONE)         # BLOCK_STATUS REQ_ONE
h.block_status(256 << 10, 768 << 10, extent)                     # BLOCK_STATUS over the unallocated tail
for e in ext:
    print("extents", e)
def reader(name, count, offset, flags=0):
    chunks = []
    def chunk(buf, off, status, err):
        chunks.append((off, len(buf), {1: "data", 2: "hole"}.get(status, status), err.value))
        return 0
    h.pread_structured(count, offset, chunk, flags)
    print(name, count, offset, "chunks", chunks)
reader("read data (top)", 65536, 65536)
reader("read hole", 65536, 786432)                               # unallocated: OFFSET_HOLE expected
reader("read span backing+hole+data", 327680, 0)
reader("read zero cluster", 65536, 524288)
reader("read hole DF", 131072, 655360, nbd.CMD_FLAG_DF)
h.shutdown()
print("done")
