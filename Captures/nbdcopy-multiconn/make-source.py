#!/usr/bin/env python3
"""Writes src.raw: 512 MiB sparse file, 64 KiB of seeded random data at the
start of every 64 MiB (8 extents, 512 KiB of data), holes everywhere else.
512 MiB because nbdcopy hands out work to its threads/connections in 128 MiB
slices: a smaller source uses only the first connection."""
import random
rng = random.Random(4242)
with open("src.raw", "wb") as f:
    f.truncate(512 << 20)
    for blk in range(8):
        f.seek(blk * (64 << 20))
        f.write(rng.randbytes(64 << 10))
