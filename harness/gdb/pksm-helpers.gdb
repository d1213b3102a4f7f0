# Batch commands for 'pksmtb.py gdb --batch' (used by the gdb test): the
# PKSM helpers of harness/gdb/pksm.py, once pksmd has merged for a while.
# pksm_merge_pair is hit at each merge of two unstable pages: skip the first
# 200 so that the stable tree has nodes with mapping records.
break pksm_merge_pair
ignore 1 200
run
pksm-stats
pksm-lists 3
pksm-unstable 5
pksm-stable 5
# the first stable node's KSM page, by pfn ($pksm_kpfn, set by pksm-stable)
pksm-page $pksm_kpfn
# a page still on probation: the new list's first, else a probation list's
# ($pksm_pfn, from pksm-lists)
pksm-page $pksm_pfn
# a KSM page from user space, through a process's page tables: a stable
# node whose first record lies in dupalloc's region (an anonymous mmap() at
# 0x40000000, so there pgoff = address >> 12; a record of a private file
# mapping's page has the file offset instead), in a workload process that
# maps it, found with the kernel's lx- helpers
python
from linux import tasks
kpfn = pgoff = None
for rb in rb_inorder(sym("pksm_stable_tree"), 1000):
    node = container_of(rb, "struct pksm_stable_node", "rb")
    first = node["mappings"]["first"]
    if ulong(first):
        off = int(container_of(first, "struct pksm_mapping", "link")["pgoff"])
        if 0x40000 <= off < 0x40000 + 2048:
            kpfn, pgoff = int(node["kpfn"]), off
            break
print(f"region KSM page: kpfn {kpfn} pgoff {pgoff}")
for t in tasks.task_lists():
    if kpfn is not None and t["comm"].string() == "dupalloc" and int(t["mm"]) != 0:
        try:
            out = gdb.execute(f"pksm-page {pgoff << 12:#x} {int(t['pid'])}", to_string=True)
        except gdb.error as e:
            print(f"PID {int(t['pid'])}: {e}")
            continue
        print(out, end="")
        if f"-> pfn {kpfn}\n" in out:
            break
# bad arguments: a clear message, not a Python traceback
for bad in ("pksm-lists -1", "pksm-stable x", "pksm-page", "pksm-page 1 2 3"):
    try:
        gdb.execute(bad)
    except gdb.error as e:
        print(f"{bad}: error: {e}")
end
delete
continue
