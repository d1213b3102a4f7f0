
"""A small real program for the engine benchmark: build, then serve."""
import collections, datetime, decimal, hashlib, json, os, random, re, sqlite3, sys, time
if os.environ.get("BENCH_MERGE") == "1":
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(67, 1, 0, 0, 0) != 0:  # PR_SET_MEMORY_MERGE
        print("pyworker: prctl(PR_SET_MEMORY_MERGE) failed, errno", ctypes.get_errno())
        sys.exit(3)
wid, n, serve = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
TAGS = ["red", "green", "blue", "admin", "guest", "staff", "ops", "dev"]
rnd = random.Random(wid)
t0 = time.monotonic()
records = []
for i in range(n):
    records.append({
        "id": i, "name": "user%06d" % i, "email": "user%d@example.org" % i,
        "balance": decimal.Decimal(rnd.randint(0, 10 ** 6)) / 100,
        "tags": [rnd.choice(TAGS) for _ in range(3)],
        "created": datetime.date(2020, 1, 1) + datetime.timedelta(days=i % 1000),
        "meta": json.dumps({"k": i, "v": [i, i * 2], "h": hashlib.md5(b"%d" % i).hexdigest()}),
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
reqs, t1 = 0, time.monotonic()
end = t1 + serve
while time.monotonic() < end:
    for _ in range(20):
        i = rnd.randrange(n)
        r = records[i]
        r["balance"] += decimal.Decimal("0.01")
        r["meta"] = json.dumps({"k": i, "n": reqs, "id": int(pat.match(r["email"]).group(1))})
        db.execute("update rec set balance = ? where id = ?", (str(r["balance"]), i))
        db.execute("select name, balance from rec where id = ?", (rnd.randrange(n),)).fetchone()
        db.execute("select count(*) from rec where tag = ?", (rnd.choice(TAGS),)).fetchone()
        reqs += 1
el = time.monotonic() - t1
print("PKSMTB-EVENT pyworker id=%d build_s=%.3f rps=%.1f requests=%d" % (wid, build, reqs / el, reqs),
      flush=True)
