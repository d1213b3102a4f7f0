# Batch commands for 'pksmtb.py gdb --batch' (used by the gdb test): stop in
# pksmd when it merges two unstable pages, look around, let the run finish.
lx-version
break pksm_merge_pair
run
bt 6
# The oldest node of the unstable FIFO and its item, container_of() by hand:
print *((struct pksm_unode *)((char *)pksm_unstable_fifo.next - (unsigned long)&((struct pksm_unode *)0)->fifo))->item
print pksm_stable_tree
print sizeof(struct pksm_item)
delete
continue
