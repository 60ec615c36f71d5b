/* filters.h - the benchmark's subscriptions: which items client g is owed,
 * derived from g alone. Shared by loadgen (the filters its clients ask for
 * and the items it checks they get) and floor --filtered (the same sends
 * with no server). Items go round the 8 regions: item seq has region
 * seq % 8. A quarter of the clients take every item, half one region, a
 * quarter two: 3/8 of the items in all. */
#ifndef TICKERD_BENCH_FILTERS_H
#define TICKERD_BENCH_FILTERS_H

#include <stddef.h>
#include <stdio.h>

enum { BENCH_ALL, BENCH_ONE_REGION, BENCH_TWO_REGIONS };

/* Item seq has the region bench_regions[seq % 8]. */
static const char *const bench_regions[8] = {"africa",        "asia", "asia-pacific", "europe",
                                             "latin-america", "mena", "palestine",    "us-canada"};

static inline int bench_filter_kind(int g)
{
    int k = g % 4;
    return k == 0 ? BENCH_ALL : k == 3 ? BENCH_TWO_REGIONS : BENCH_ONE_REGION;
}
static inline int bench_region1(int g)
{
    return (g / 4) % 8;
}
static inline int bench_region2(int g)
{
    return (g / 4 + 3) % 8;
}
static inline int bench_owed(int kind, int g, int seq)
{
    int r = seq % 8;
    return kind == BENCH_ALL || r == bench_region1(g) ||
           (kind == BENCH_TWO_REGIONS && r == bench_region2(g));
}

/* The region part of a tickerd query for client g of that kind:
 * "&region=a" or "&region=a,b", "" for BENCH_ALL. */
static inline void bench_region_query(int kind, int g, char *out, size_t cap)
{
    if (kind == BENCH_ONE_REGION)
        snprintf(out, cap, "&region=%s", bench_regions[bench_region1(g)]);
    else if (kind == BENCH_TWO_REGIONS)
        snprintf(out, cap, "&region=%s,%s", bench_regions[bench_region1(g)],
                 bench_regions[bench_region2(g)]);
    else if (cap)
        out[0] = 0;
}

#endif
