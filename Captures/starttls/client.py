# Run by record.sh as: nbdsh -c "exec(open('client.py').read())" (handle h is implicit)
import os
h.set_tls(nbd.TLS_REQUIRE)
h.set_tls_psk_file(os.environ["PSK_FILE"])
h.set_tls_username("alice")
h.connect_tcp("127.0.0.1", os.environ["NBD_PORT"])
print("size", h.get_size(), "tls", h.get_tls_negotiated(),
      "structured", h.get_structured_replies_negotiated())
pat = bytes(range(256)) * 16                           # 4096 bytes
h.pwrite(pat, 0); print("pwrite ok")                   # WRITE
buf = h.pread(4096, 0); print("pread ok", buf == pat)  # READ
h.flush(); print("flush ok")                           # FLUSH
h.shutdown()                                           # DISC
print("done")
