// How many new flows a second the observer takes on, and from whom. A pod spraying packets to
// random ports makes a new flow with each; past the cap the rest are counted as lost instead of
// tracked. One budget for the whole node would let that pod blind the observer to every other
// pod's new flows for as long as it sprays (a ping right after a flood went unseen so): each
// source address may take only a share of the budget, so the others still have the rest.
export class NewFlowBudget {
  private total = 0;
  private readonly bySource = new Map<string, number>();

  /** `perSecond` new flows in all; one source at most `perSecond * share`. */
  constructor(readonly perSecond: number, readonly share = 0.25, private readonly maxSources = 4096) {}

  /** Whether a new flow from `source` may be tracked this second (counted if so). */
  admit(source: string): boolean {
    if (this.total >= this.perSecond) return false;
    // Past maxSources distinct sources in a second (a spoofing flood), the rest share one bucket.
    const key = this.bySource.has(source) || this.bySource.size < this.maxSources ? source : "";
    const n = this.bySource.get(key) ?? 0;
    if (n >= Math.max(1, Math.floor(this.perSecond * this.share))) return false;
    this.bySource.set(key, n + 1);
    this.total++;
    return true;
  }

  /** The next second. */
  reset(): void {
    this.total = 0;
    this.bySource.clear();
  }
}
