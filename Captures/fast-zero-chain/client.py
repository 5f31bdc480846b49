# Run by record.sh as: nbdsh -c "exec(open('client.py').read())" (handle h is implicit)
import os
h.connect_uri(os.environ["NBD_URI"])          # qemu-nbd, the proxy
print("size", h.get_size(), "can_fast_zero", h.can_fast_zero(), "can_zero", h.can_zero(),
      "can_multi_conn", h.can_multi_conn())
def step(name, f):
    try:
        f()
        print(name, "ok")
    except nbd.Error as e:
        print(name, "error", e.errno)
step("zero fast", lambda: h.zero(65536, 0, nbd.CMD_FLAG_FAST_ZERO))
step("zero", lambda: h.zero(65536, 65536))
step("zero fast|no_hole", lambda: h.zero(65536, 131072, nbd.CMD_FLAG_FAST_ZERO | nbd.CMD_FLAG_NO_HOLE))
step("pwrite", lambda: h.pwrite(b"\x5a" * 4096, 262144))
step("pread", lambda: h.pread(8192, 262144))
h.shutdown()
print("done")
