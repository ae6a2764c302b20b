#!/usr/bin/env python3
"""Generates the benchmark zone and query corpus.

Usage: gen.py OUTDIR [RECORDS]

The corpus mix follows the benchmark's definition: about 70% positive answers (plain data,
CNAME chains, wildcard synthesis), 12% NXDOMAIN, 8% NODATA, 4% referrals, 6% out of zone.
"""
import os
import random
import sys

out = sys.argv[1]
n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
random.seed(42)
os.makedirs(out, exist_ok=True)
origin = "bench.example."
hosts = max(100, n - 2000)
with open(os.path.join(out, "bench.example.zone"), "w") as z:
    z.write(f"$ORIGIN {origin}\n$TTL 3600\n")
    z.write("@ SOA ns1 hostmaster 2024010101 7200 900 1209600 300\n  NS ns1\n  NS ns2\n  MX 10 mail\n")
    z.write("ns1 A 192.0.2.1\nns2 A 192.0.2.2\nmail A 192.0.2.3\n*.wild A 192.0.2.9\n")
    for i in range(hosts):
        z.write(f"host{i} A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}\n")
        if i % 4 == 0:
            z.write(f"host{i} AAAA 2001:db8::{i >> 16:x}:{i & 0xffff:x}\n")
    for i in range(500):
        z.write(f"alias{i} CNAME chain{i}\nchain{i} CNAME host{i}\n")
    for i in range(200):
        z.write(f"dept{i} NS ns.dept{i}\nns.dept{i} A 10.200.{i >> 8}.{i & 255}\n")
queries = []
for _ in range(100000):
    r = random.random()
    if r < 0.50:
        i = random.randrange(hosts)
        queries.append(f"host{i}.{origin} A")
    elif r < 0.60:
        queries.append(f"alias{random.randrange(500)}.{origin} A")
    elif r < 0.70:
        queries.append(f"x{random.randrange(100000)}.wild.{origin} A")
    elif r < 0.82:
        queries.append(f"nx{random.randrange(100000)}.{origin} A")
    elif r < 0.90:
        i = random.randrange(hosts)
        queries.append(f"host{i}.{origin} TXT")
    elif r < 0.94:
        queries.append(f"www.dept{random.randrange(200)}.{origin} A")
    else:
        queries.append(f"www{random.randrange(1000)}.example.org. A")
with open(os.path.join(out, "queries.txt"), "w") as q:
    q.write("\n".join(queries) + "\n")
