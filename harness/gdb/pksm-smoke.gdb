# Batch commands for 'pksmtb.py gdb --batch' (used by the gdb test): stop in
# pksmd when it merges two unstable pages, look around, let the run finish.
lx-version
break pksm_merge_pair
run
bt 6
# The unstable partner's item: in the unstable table (where 3), alive;
# its frame (no pfn field: its place in the item table) is its page's:
print *partner
print pksm_stable_tree
print sizeof(struct pksm_item)
print $pksm_item_pfn(partner)
print (struct page *)pfolio - mem_map
delete
continue
