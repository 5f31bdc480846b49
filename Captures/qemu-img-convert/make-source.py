#!/usr/bin/env python3
"""Writes src.raw: 16 MiB, 64 KiB of seeded random data at the start of every
even MiB (0, 2, ..., 14 MiB), holes (never written, sparse) everywhere else."""
import random
rng = random.Random(20261129)
with open("src.raw", "wb") as f:
    f.truncate(16 << 20)
    for mib in range(0, 16, 2):
        f.seek(mib << 20)
        f.write(rng.randbytes(64 << 10))
