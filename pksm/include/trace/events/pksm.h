/* SPDX-License-Identifier: GPL-2.0 */
/*
 * PKSM tracepoints: the life of a page on a timeline.  Pages are named by
 * pfn; KSM pages by the pfn of the KSM page (kpfn).
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM pksm

#if !defined(_TRACE_PKSM_H) || defined(TRACE_HEADER_MULTI_READ)
#define _TRACE_PKSM_H

#include <linux/tracepoint.h>

#define PKSM_MERGE_ZERO		0
#define PKSM_MERGE_STABLE	1
#define PKSM_MERGE_UNSTABLE	2
#define PKSM_MERGE_LONE		3	/* fake merging: a KSM page alone */

DECLARE_EVENT_CLASS(pksm_page,
		    TP_PROTO(unsigned long pfn),
		    TP_ARGS(pfn),
		    TP_STRUCT__entry(__field(unsigned long, pfn)),
		    TP_fast_assign(__entry->pfn = pfn;),
		    TP_printk("pfn=0x%lx", __entry->pfn));

/* A new anonymous page got a tracking item (the birth hook). */
DEFINE_EVENT(pksm_page, pksm_page_registered,
	     TP_PROTO(unsigned long pfn),
	     TP_ARGS(pfn));

/* pksmd freed the item of a page that was freed, merged or left. */
DEFINE_EVENT(pksm_page, pksm_item_released,
	     TP_PROTO(unsigned long pfn),
	     TP_ARGS(pfn));

/* Re-verification found an unstable page changed: back to rescan. */
DEFINE_EVENT(pksm_page, pksm_reverify_changed,
	     TP_PROTO(unsigned long pfn),
	     TP_ARGS(pfn));

/* A write fault is copying the KSM page kpfn (a COW break). */
DEFINE_EVENT(pksm_page, pksm_cow_break,
	     TP_PROTO(unsigned long pfn),
	     TP_ARGS(pfn));

/* A new page became a merge candidate after @visits unchanged visits. */
TRACE_EVENT(pksm_probation_passed,
	    TP_PROTO(unsigned long pfn, unsigned int visits),
	    TP_ARGS(pfn, visits),
	    TP_STRUCT__entry(__field(unsigned long, pfn)
			     __field(unsigned int, visits)),
	    TP_fast_assign(__entry->pfn = pfn;
			   __entry->visits = visits;),
	    TP_printk("pfn=0x%lx visits=%u", __entry->pfn, __entry->visits));

/*
 * Page pfn now maps to kpfn: the zero page, a stable or a new KSM page;
 * kind lone (fake merging): pfn became a KSM page alone, kpfn == pfn.
 */
TRACE_EVENT(pksm_merge,
	    TP_PROTO(unsigned long pfn, unsigned long kpfn, int kind),
	    TP_ARGS(pfn, kpfn, kind),
	    TP_STRUCT__entry(__field(unsigned long, pfn)
			     __field(unsigned long, kpfn)
			     __field(int, kind)),
	    TP_fast_assign(__entry->pfn = pfn;
			   __entry->kpfn = kpfn;
			   __entry->kind = kind;),
	    TP_printk("pfn=0x%lx kpfn=0x%lx kind=%s", __entry->pfn,
		      __entry->kpfn,
		      __print_symbolic(__entry->kind,
				       { PKSM_MERGE_ZERO, "zero" },
				       { PKSM_MERGE_STABLE, "stable" },
				       { PKSM_MERGE_UNSTABLE, "unstable" },
				       { PKSM_MERGE_LONE, "lone" })));

/* Equal sampled hashes, different content: pfn was not merged with other. */
TRACE_EVENT(pksm_hash_false_positive,
	    TP_PROTO(unsigned long pfn, unsigned long other),
	    TP_ARGS(pfn, other),
	    TP_STRUCT__entry(__field(unsigned long, pfn)
			     __field(unsigned long, other)),
	    TP_fast_assign(__entry->pfn = pfn;
			   __entry->other = other;),
	    TP_printk("pfn=0x%lx other=0x%lx", __entry->pfn, __entry->other));

/*
 * An unmerge (run=2, MADV_UNMERGEABLE, or a process opting out) gave the
 * page at @addr its own copy instead of the KSM page or zero page kpfn.
 */
TRACE_EVENT(pksm_unmerge,
	    TP_PROTO(unsigned long kpfn, unsigned long addr, int kind),
	    TP_ARGS(kpfn, addr, kind),
	    TP_STRUCT__entry(__field(unsigned long, kpfn)
			     __field(unsigned long, addr)
			     __field(int, kind)),
	    TP_fast_assign(__entry->kpfn = kpfn;
			   __entry->addr = addr;
			   __entry->kind = kind;),
	    TP_printk("kpfn=0x%lx addr=0x%lx kind=%s", __entry->kpfn,
		      __entry->addr,
		      __print_symbolic(__entry->kind,
				       { PKSM_MERGE_ZERO, "zero" },
				       { PKSM_MERGE_STABLE, "ksm" })));

#endif /* _TRACE_PKSM_H */

/* This part must be outside protection */
#include <trace/define_trace.h>
