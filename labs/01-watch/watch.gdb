# Lab 1: gdb commands run in batch against the lab's scenario (with PKSM's
# tracepoints recorded): make lab-check LAB=1.  The kernel's lx- commands
# and PKSM's pksm-* commands are loaded (docs/gdb.md).
set pagination off
set confirm off
# LAB 1 BEGIN: stop at a pair merge that succeeds, print the two LAB1 lines (handout, step 3)
# Let the daemon settle: skip the first 50 pair merges.
break pksm_merge_pair
ignore 1 50
run
# item is the visiting page, partner the unstable page that becomes the
# KSM page in place; 0 returned means merged.
set $lab_done = 0
while $lab_done == 0
  set $lab_pfn = $pksm_item_pfn(item)
  set $lab_kpfn = $pksm_item_pfn(partner)
  finish
  if $ == 0
    set $lab_done = 1
  else
    continue
  end
end
printf "LAB1 merged pfn=%lu kpfn=%lu\n", $lab_pfn, $lab_kpfn
pksm-page $lab_kpfn
delete
# A write to the KSM page: COW (UML is FLATMEM: page = mem_map + pfn).
break __pksm_cow_break if folio == (struct folio *)(mem_map + $lab_kpfn)
continue
printf "LAB1 cow kpfn=%lu\n", $lab_kpfn
bt 6
pksm-page $lab_kpfn
delete
# The writer's private copy is a newborn page: the next birth on this CPU.
break __pksm_folio_born
continue
set $lab_copy = (struct page *)folio - mem_map
printf "LAB1 born pfn=%lu\n", $lab_copy
finish
pksm-page $lab_copy
delete
# LAB 1 END
continue
