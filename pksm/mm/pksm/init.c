// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: the boot parameters pksm.enabled= and pksm.opted_in_only=, and
 * start-up: the caches, the tables, pksmd, the hooks, sysfs and debugfs
 * (see internal.h for the overview).
 */

#include <linux/mm.h>
#include <linux/pksm.h>
#include <linux/slab.h>
#include <linux/jump_label.h>
#include <linux/moduleparam.h>
#include "internal.h"

/* The parameters keep their names pksm.*= (this object is init.o). */
#undef MODULE_PARAM_PREFIX
#define MODULE_PARAM_PREFIX "pksm."

/*
 * pksm.enabled=0 on the command line: no hooks and no daemon at all, the
 * baseline for PKSM's overhead.  Read once by pksm_init().
 */
static bool pksm_boot_enabled = true;
module_param_named(enabled, pksm_boot_enabled, bool, 0444);

/*
 * pksm.opted_in_only=1 on the command line: merge only what opted in, as
 * upstream KSM does (VM_MERGEABLE ranges, PR_SET_MEMORY_MERGE processes),
 * with PKSM's engine: for comparisons at equal coverage and for upstream's
 * selftests, which assert exact system-wide counts.  Fixed after boot.
 */
bool pksm_opted_in_only __ro_after_init;
module_param_named(opted_in_only, pksm_opted_in_only, bool, 0444);

static struct task_struct *pksmd_task;

static int __init pksm_init(void)
{
	unsigned long table_len = 0;
	int err = -ENOMEM;
	bool track_ok;

	/* The probation lists and the item cache. */
	track_ok = pksm_track_init();
	/*
	 * Caches of their own (SLAB_NO_MERGE): their object counts in
	 * /sys/kernel/slab/ are PKSM's alone, and fault injection
	 * (failslab) can target them.
	 */
	pksm_node_cache = KMEM_CACHE(pksm_stable_node, SLAB_NO_MERGE);
	pksm_mapping_cache = KMEM_CACHE(pksm_mapping, SLAB_NO_MERGE);
	pksm_claim_cache = kmem_cache_create("pksm_claim",
					     PKSM_CLAIM_BATCH *
					     sizeof(struct mm_struct *),
					     0, SLAB_NO_MERGE, NULL);
	if (!track_ok || !pksm_node_cache || !pksm_mapping_cache ||
	    !pksm_claim_cache)
		goto out_caches;

	pksm_choose_sample();
	if (pksm_boot_enabled) {
		table_len = pksm_track_table_init();
		if (!table_len)
			goto out_caches;
		if (!pksm_unstable_table_init())
			goto out_table;
		if (!pksm_held_init())
			goto out_unstable;
		pksmd_task = pksm_start_pksmd();
		if (IS_ERR(pksmd_task)) {
			err = PTR_ERR(pksmd_task);
			pr_err("pksm: creating pksmd failed\n");
			goto out_held;
		}
		static_branch_enable(&pksm_hooks_key);
	} else {
		pksm_run = PKSM_RUN_STOP;
	}

	pksm_sysfs_init();
	pksm_debugfs_init();
	pr_info("pksm: %s, %u sampled words, table of %lu pages\n",
		pksm_boot_enabled ? "tracking anonymous pages" :
				    "off (pksm.enabled=0)",
		PKSM_SAMPLE_WORDS, table_len);
	return 0;

out_held:
	pksm_held_free();
out_unstable:
	pksm_unstable_table_free();
out_table:
	pksm_track_table_free();
out_caches:
	kmem_cache_destroy(pksm_claim_cache);
	kmem_cache_destroy(pksm_mapping_cache);
	kmem_cache_destroy(pksm_node_cache);
	pksm_track_cache_destroy();
	return err;
}
subsys_initcall(pksm_init);
