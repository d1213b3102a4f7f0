"""pyserve: one worker of a prefork application server (host program).

Run in the guest by the harness (pksmtb/hostprog.py) with the host's
/usr/bin/python3, N of them at once, each independently: the same imports,
the same records, the same in-memory sqlite table (the memory KSM is
deployed for), then requests for --seconds.  Reports

    PKSMTB-EVENT throughput prog=pyserve id=I unit=rps value=R build_s=B requests=N
"""
import argparse
import collections
import datetime
import decimal
import hashlib
import json
import random
import re
import sqlite3
import sys
import time
from typing import Any

ap = argparse.ArgumentParser()
ap.add_argument("--id", type=int, required=True)
ap.add_argument("--records", type=int, default=20000)
ap.add_argument("--seconds", type=float, default=10)
ap.add_argument("--merge", action="store_true", help="opt in to KSM (PR_SET_MEMORY_MERGE)")
a = ap.parse_args()
if a.merge:
    import ctypes
    if ctypes.CDLL(None, use_errno=True).prctl(67, 1, 0, 0, 0) != 0:
        sys.exit("pyserve: prctl(PR_SET_MEMORY_MERGE) failed, errno %d" % ctypes.get_errno())

TAGS = ["red", "green", "blue", "admin", "guest", "staff", "ops", "dev"]
rnd = random.Random(1)          # the same data in every worker
t0 = time.monotonic()
records: list[dict[str, Any]] = []
for i in range(a.records):
    records.append({
        "id": i, "name": "user%06d" % i, "email": "user%d@example.org" % i,
        "balance": decimal.Decimal(rnd.randint(0, 10 ** 6)) / 100,
        "tags": [rnd.choice(TAGS) for _ in range(3)],
        "created": datetime.date(2020, 1, 1) + datetime.timedelta(days=i % 1000),
        "meta": json.dumps({"k": i, "h": hashlib.md5(b"%d" % i).hexdigest()}),
    })
db = sqlite3.connect(":memory:")
db.execute("create table rec (id integer primary key, name text, email text,"
           " balance text, tag text, created text)")
db.executemany("insert into rec values (?, ?, ?, ?, ?, ?)",
               ((r["id"], r["name"], r["email"], str(r["balance"]), r["tags"][0],
                 r["created"].isoformat()) for r in records))
db.execute("create index rec_tag on rec(tag)")
db.commit()
counts = collections.Counter(t for r in records for t in r["tags"])
pat = re.compile(r"user(\d+)@")
build = time.monotonic() - t0

rnd = random.Random(a.id)       # each worker its own requests
reqs, t1 = 0, time.monotonic()
end = t1 + a.seconds
while time.monotonic() < end:
    for _ in range(20):
        i = rnd.randrange(a.records)
        r = records[i]
        r["balance"] += decimal.Decimal("0.01")
        m = pat.match(r["email"])
        body = json.dumps({"id": int(m.group(1)) if m else -1, "name": r["name"],
                           "balance": str(r["balance"]), "tags": r["tags"],
                           "tagcount": counts[r["tags"][0]]})
        db.execute("update rec set balance = ? where id = ?", (str(r["balance"]), i))
        db.execute("select name, balance from rec where id = ?",
                   (rnd.randrange(a.records),)).fetchone()
        reqs += 1
el = time.monotonic() - t1
print("PKSMTB-EVENT throughput prog=pyserve id=%d unit=rps value=%.1f build_s=%.3f "
      "requests=%d bytes=%d" % (a.id, reqs / el, build, reqs, len(body)), flush=True)
