/**
 * Keeps a label's values bounded: the first `max` distinct values pass, any
 * later one becomes `other`. Zones come from workers' Hello and producers'
 * submits, queues from producers: neither may grow a metric or the heatmap
 * without bound.
 */
export class BoundedLabels {
  private readonly seen = new Set<string>();

  constructor(
    private readonly max: number,
    private readonly other = 'other',
  ) {}

  value(raw: string): string {
    if (this.seen.has(raw)) return raw;
    if (this.seen.size >= this.max) return this.other;
    this.seen.add(raw);
    return raw;
  }
}

/** Distinct zones any metric or heatmap series keeps (the rest show as "other"). */
export const MAX_ZONE_LABELS = 32;
/** Distinct queues a metric keeps (the rest show as "other"). */
export const MAX_QUEUE_LABELS = 200;
