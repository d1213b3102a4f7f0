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
# a page still on probation: the new list's first ($pksm_pfn, from pksm-lists)
pksm-page $pksm_pfn
# the KSM page from user space: the first record's address in a workload
# process that maps it (page-table walk), found with the kernel's lx- helpers
python
from linux import tasks
addr = int(gdb.convenience_variable("pksm_pgoff")) << 12
for t in tasks.task_lists():
    if t["comm"].string() == "dupalloc" and int(t["mm"]) != 0:
        try:
            out = gdb.execute(f"pksm-page {addr:#x} {int(t['pid'])}", to_string=True)
        except gdb.error as e:
            print(f"PID {int(t['pid'])}: {e}")
            continue
        print(out, end="")
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
