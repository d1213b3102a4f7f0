# Batch commands for 'pksmtb.py gdb --batch' (used by the gdb test): stop in
# pksmd when it merges two unstable pages, look around, let the run finish.
lx-version
break pksm_merge_pair
run
bt 6
# The unstable partner's item: in the unstable table (where 4), alive:
print *partner
print pksm_stable_tree
print sizeof(struct pksm_item)
delete
continue
