// SPDX-License-Identifier: GPL-2.0-only
/*
 * PKSM: the daemon pksmd: its batches (the new, rescan and probation
 * lists' visits, re-verification of the unstable table, the pruning
 * sweep), the upkeep while it does not merge, and the lock and counters
 * of a batch (see internal.h for the overview and the locks).  A visit's
 * merge decisions are in merge.c.
 */

#include <linux/mm.h>
#include <linux/kthread.h>
#include <linux/freezer.h>
#include <linux/wait.h>
#include <linux/swap.h>
#include <linux/ktime.h>
#include <linux/sched/cputime.h>
#include "internal.h"

#include <trace/events/pksm.h>

#define PKSM_PRUNE_NODES		64	/* most stable nodes pruned a batch */

/*
 * Outermost PKSM lock: pksmd's batch and run=2; the stable tree, the
 * unstable table, stable node fields other than ->mappings, knob
 * writes and pksm_sc (M).  Taken before any mmap lock (run=2), folio lock,
 * anon_vma lock, page table lock and pksm_lock; never by a fault, and
 * only tried by reclaim (swap.c).  See internal.h.
 */
DEFINE_MUTEX(pksm_mutex);

/* (M) */
struct pksm_scan_counts pksm_sc;

/* pksmd sleeps here between batches; knob writes and reclaim wake it. */
DECLARE_WAIT_QUEUE_HEAD(pksm_daemon_wait);

/* (M) jiffies at the start of the last batch (the budgets' clock) */
static unsigned long pksm_last_batch;
/* (M) batches begun, and the one in which pksmd last drained the LRU */
static unsigned long pksm_batch_seq, pksm_drain_seq;
/* (M) jiffies at that drain */
static unsigned long pksm_last_drain;

/*
 * Per-cpu LRU batches hold a reference on recently added pages, which a
 * merge's reference check reads as a pin: drain them, at most once a batch
 * (batches may follow each other within a jiffy: sleep_millisecs 0), so
 * that a merge that failed for an extra reference can be tried once more
 * at once (merge.c, pksm_drain_for()).  pksm_mutex held.
 */
void pksm_drain_lru(void)
{
	if (pksm_drain_seq == pksm_batch_seq)
		return;		/* drained in this batch already */
	pksm_drain_seq = pksm_batch_seq;
	pksm_last_drain = jiffies;
	lru_add_drain_all();
	pksm_sc.nr_lru_drains++;
}

/*
 * Visit what pksm_probation_cut() (track.c) found due, and take the cuts
 * out.
 */
static void pksm_probation_visit(unsigned long *take)
{
	struct pksm_item *item;
	unsigned int level;

	for (level = 0; level < PKSM_LEVELS; level++) {
		if (!take[level])
			continue;
		while (take[level]-- &&
		       (item = pksm_pop(PKSM_PROBATION, level))) {
			pksm_visit(item, true);
			cond_resched();
		}
		pksm_probation_uncut(level);
	}
}

/*
 * The time since the last batch in ms, and a new batch begins.  The
 * budgets cover it, not sleep_millisecs: wake-ups come later than asked
 * (jiffies, the batch's own time), and each page is to be re-verified
 * once per period of real time.  At most one period's worth; 0 for a
 * batch in the same jiffy as the last (sleep_millisecs 0, or pksmd woken
 * early by a knob write or reclaim's kick), which gets no re-verify or
 * prune budget and no new probation credit (it may still spend what an
 * earlier batch's cut carried over): the batch that crosses into the next
 * jiffy accounts for the time.
 */
static unsigned int pksm_batch_interval(unsigned int period)
{
	unsigned long now = jiffies;
	unsigned int since = jiffies_to_msecs(now - pksm_last_batch);

	pksm_last_batch = now;
	pksm_batch_seq++;
	return min(since, period * 1000U);
}

/*
 * While pksmd does not merge (run=0 or 2), the pruning sweep still goes
 * on: it keeps pages_shared and pages_sharing true through forks, munmap,
 * exit and swap-out, and drops records nothing needs.
 */
static void pksm_idle_upkeep(void)
{
	unsigned int period = max(READ_ONCE(pksm_period_seconds), 1U);
	unsigned int since = pksm_batch_interval(period);

	pksm_swap_idle();
	if (since)
		pksm_prune(pksm_reverify_budget(pksm_sc.nr_stable_nodes,
						PKSM_PRUNE_NODES, since,
						period));
}

/*
 * One batch: up to pages_to_scan visits (probation visits as they come
 * due, but at least half the batch left to the new and rescan lists while
 * they have pages), plus the re-verify and prune budgets.  Returns true
 * if most of its visits to the new list made progress (not pages put
 * back unread: pinned and unmapped before their first visit) and more
 * pages wait there.
 */
static bool pksm_do_scan(void)
{
	unsigned int period = max(READ_ONCE(pksm_period_seconds), 1U);
	/* Under memory pressure a larger budget (swap.c). */
	unsigned int todo =
		pksm_swap_scan_budget(READ_ONCE(pksm_pages_to_scan));
	unsigned int since;
	unsigned long take_new, take_rescan, avail_new, avail_rescan;
	unsigned long take_probation[PKSM_LEVELS], probation;
	struct pksm_item *item;
	unsigned long read = 0, unread = 0;

	since = pksm_batch_interval(period);
	/*
	 * Pages born while their item's chunk could not be allocated: once
	 * a jiffy at most (an allocation may reclaim).
	 */
	if (since)
		pksm_chunks_retry();

	pksm_nr_waiting(&avail_new, &avail_rescan);
	probation = pksm_probation_cut(take_probation,
				       todo - min_t(unsigned long, todo / 2,
						    avail_new + avail_rescan),
				       since);
	pksm_split_batch(todo - probation, avail_new, avail_rescan, &take_new,
			 &take_rescan);
	pksm_sc.round_left -= take_new + take_rescan;

	while (take_new-- && (item = pksm_pop(PKSM_NEW, 0))) {
		if (pksm_visit(item, true))
			read++;
		else
			unread++;
		cond_resched();
	}
	while (take_rescan-- && (item = pksm_pop(PKSM_RESCAN, 0))) {
		pksm_visit(item, false);
		cond_resched();
	}
	pksm_probation_visit(take_probation);
	/*
	 * The unstable table's buckets in turn, once round per period (empty
	 * buckets cost a load each; at most a batch's worth of pages).
	 */
	if (pksm_sc.nr_unstable && since)
		pksm_unstable_reverify(pksm_reverify_budget(pksm_unstable_buckets(),
							    UINT_MAX, since,
							    period),
				       todo);
	/* Each stable node's records checked about once per period too. */
	if (since)
		pksm_prune(pksm_reverify_budget(pksm_sc.nr_stable_nodes,
						PKSM_PRUNE_NODES, since,
						period));

	/*
	 * A full scan: every item that was waiting on the new and rescan
	 * lists when the round began has been visited (or freed: with
	 * nothing waiting when the batch began the round is over too).  With
	 * nothing waiting every batch completes a round, so full_scans rises
	 * while idle.
	 */
	if (pksm_sc.round_left <= 0 || !(avail_new + avail_rescan)) {
		pksm_sc.full_scans++;
		pksm_nr_waiting(&avail_new, &avail_rescan);
		pksm_sc.round_left = avail_new + avail_rescan;
		/* Pages wait on the rescan list: drain ten times a second. */
		if (avail_rescan &&
		    time_after(jiffies, pksm_last_drain + HZ / 10))
			pksm_drain_lru();
	}
	pksm_nr_waiting(&avail_new, &avail_rescan);
	return read > unread && avail_new;
}

static int pksmd(void *unused)
{
	set_freezable();
	set_user_nice(current, 5);
	while (!kthread_should_stop()) {
		unsigned long turned_away = pksm_swap_turned_away();
		unsigned int sleep_ms;
		bool more = false;
		u64 start, cpu;

		mutex_lock(&pksm_mutex);
		start = ktime_get_ns();
		cpu = current_task_cpu_ns();
		pksm_release_dead_nodes();
		pksm_release_dead_unstable(4UL * READ_ONCE(pksm_pages_to_scan) +
					   64);
		/* Pages born before the round's count: it waits for them. */
		pksm_sc.round_left += pksm_reborn_release();
		if (pksm_run == PKSM_RUN_MERGE)
			more = pksm_do_scan();
		else
			pksm_idle_upkeep();
		pksm_sc.busy_ns += ktime_get_ns() - start;
		/* Read locklessly by sysfs (a 64-bit load). */
		WRITE_ONCE(pksm_sc.cpu_ns,
			   pksm_sc.cpu_ns + current_task_cpu_ns() - cpu);
		mutex_unlock(&pksm_mutex);

		sleep_ms = READ_ONCE(pksm_sleep_ms);
		/*
		 * sleep_millisecs 0 asks for no sleep (ksmd then never
		 * sleeps): the next batch follows at once while the batch's
		 * visits to the new list mostly made progress and more pages
		 * wait there (a pending kick of reclaim's is served by it).
		 * Otherwise a jiffy's sleep, so that pksmd does not spin on
		 * pages it cannot read yet, on the rescan list's retries or
		 * with nothing to do; and when reclaim found pksm_mutex held
		 * during the batch, so that the swap hook gets its turn (a
		 * kick then does not cut that jiffy short).
		 */
		if (!sleep_ms) {
			bool yield = pksm_swap_turned_away() != turned_away;

			if (more && !yield) {
				pksm_swap_take_kick();
				try_to_freeze();
				cond_resched();
				continue;
			}
			if (yield)
				pksm_swap_take_kick();
		}
		wait_event_freezable_timeout(pksm_daemon_wait,
					     kthread_should_stop() ||
					     sleep_ms != READ_ONCE(pksm_sleep_ms) ||
					     pksm_swap_take_kick(),
					     max(msecs_to_jiffies(sleep_ms), 1UL));
	}
	return 0;
}

/* Start pksmd (pksm_init()). */
struct task_struct *pksm_start_pksmd(void)
{
	return kthread_run(pksmd, NULL, "pksmd");
}
