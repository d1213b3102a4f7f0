# Batch commands for 'pksmtb.py gdb --batch' (used by the gdb test): stop in
# pksmd when it merges two unstable pages, look around, let the run finish.
lx-version
break pksm_merge_pair
run
bt 6
# The oldest item of the unstable FIFO, container_of() by hand:
print *(struct pksm_item *)((char *)pksm_unstable_fifo.next - (unsigned long)&((struct pksm_item *)0)->link)
print pksm_stable_tree
print sizeof(struct pksm_item)
delete
continue
