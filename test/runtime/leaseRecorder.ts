// A LeaseEvents that records every lease event as a line, for the lease suites to assert on.
import type { LeaseEvents } from '../../runtime/leases.js';

export interface Recorder extends LeaseEvents { readonly log: string[] }

/** Lease events written down in order (`acquired 3@7`, `released 3 lost`, `suspended 3`, …). */
export function recorder(): Recorder {
  const l: string[] = [];
  return {
    log: l,
    acquired: (p, e) => { l.push(`acquired ${p}@${e}`); return Promise.resolve(); },
    released: (p, g) => { l.push(`released ${p} ${g ? 'graceful' : 'lost'}`); return Promise.resolve(); },
    suspended: (p) => { l.push(`suspended ${p}`); },
    resumed: (p) => { l.push(`resumed ${p}`); },
  };
}
