# Batch commands for 'pksmtb.py gdb --batch' (used by the gdb test):
# stop in the KSM scanner while a workload runs, look around, finish.
lx-version
break ksm_do_scan
run
bt 6
print ksm_scan
print *ksm_scan.mm_slot
print sizeof(struct ksm_rmap_item)
delete
continue
