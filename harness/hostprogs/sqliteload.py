"""sqliteload: one of N processes loading the same dataset into sqlite
(host program, run in the guest by the harness: pksmtb/hostprog.py).

Each process generates the same rows (a fixed seed), loads them into its
own in-memory sqlite database with two indexes (the load is timed:
build_s), then runs a mix of point queries, range scans and updates for
--seconds.  Reports

    PKSMTB-EVENT throughput prog=sqliteload id=I unit=ops value=R build_s=B ops=N
"""
import argparse
import random
import sqlite3
import sys
import time

ap = argparse.ArgumentParser()
ap.add_argument("--id", type=int, required=True)
ap.add_argument("--rows", type=int, default=50000)
ap.add_argument("--seconds", type=float, default=10)
ap.add_argument("--merge", action="store_true", help="opt in to KSM (PR_SET_MEMORY_MERGE)")
a = ap.parse_args()
if a.merge:
    import ctypes
    if ctypes.CDLL(None, use_errno=True).prctl(67, 1, 0, 0, 0) != 0:
        sys.exit("sqliteload: prctl(PR_SET_MEMORY_MERGE) failed, errno %d" % ctypes.get_errno())

rnd = random.Random(2)          # the same dataset everywhere
CITIES = ["Oslo", "Lyon", "Porto", "Graz", "Turku", "Gent", "Brno", "Cork"]
t0 = time.monotonic()
db = sqlite3.connect(":memory:")
db.execute("pragma cache_size = -65536")
db.execute("create table orders (id integer primary key, customer integer, city text,"
           " amount integer, note text)")
db.executemany("insert into orders values (?, ?, ?, ?, ?)",
               ((i, rnd.randrange(a.rows // 10 + 1), rnd.choice(CITIES),
                 rnd.randrange(100000), "order %d for customer" % i) for i in range(a.rows)))
db.execute("create index orders_customer on orders(customer)")
db.execute("create index orders_city_amount on orders(city, amount)")
db.commit()
build = time.monotonic() - t0

rnd = random.Random(a.id)
ops, t1 = 0, time.monotonic()
end = t1 + a.seconds
while time.monotonic() < end:
    for _ in range(20):
        k = rnd.randrange(3)
        if k == 0:
            db.execute("select sum(amount) from orders where customer = ?",
                       (rnd.randrange(a.rows // 10 + 1),)).fetchone()
        elif k == 1:
            lo = rnd.randrange(100000)
            db.execute("select count(*) from orders where city = ? and amount between ? and ?",
                       (rnd.choice(CITIES), lo, lo + 500)).fetchone()
        else:
            db.execute("update orders set amount = amount + 1 where id = ?",
                       (rnd.randrange(a.rows),))
        ops += 1
el = time.monotonic() - t1
print("PKSMTB-EVENT throughput prog=sqliteload id=%d unit=ops value=%.1f build_s=%.3f ops=%d"
      % (a.id, ops / el, build, ops), flush=True)
