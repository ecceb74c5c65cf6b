import { describe, expect, it } from 'vitest';
import { OTHERS_ANSWERED_TO_LEAVE, shouldLeaveSilentDispatcher, type ProbeTally } from '../../src/client/worker';

const tally = (t: Partial<ProbeTally>): ProbeTally => ({ oursAnswered: false, oursUnanswered: 0, othersAnswered: 0, ...t });

describe('a worker leaves a silent dispatcher only when another one answers in its place', () => {
  it('stays while nothing answered: no other place to go (one dispatcher, control plane not yet judged)', () => {
    expect(shouldLeaveSilentDispatcher(tally({ oursUnanswered: 3 }))).toBe(false);
  });

  it('leaves when its own dispatcher left a probe unanswered and another answered (hung, and the balancer has an alternative)', () => {
    expect(shouldLeaveSilentDispatcher(tally({ oursUnanswered: 1, othersAnswered: 1 }))).toBe(true);
  });

  it(`leaves when ${OTHERS_ANSWERED_TO_LEAVE} probes went elsewhere and none to its own: the balancer stopped picking it (xDS marked it UNHEALTHY)`, () => {
    expect(shouldLeaveSilentDispatcher(tally({ othersAnswered: OTHERS_ANSWERED_TO_LEAVE - 1 }))).toBe(false);
    expect(shouldLeaveSilentDispatcher(tally({ othersAnswered: OTHERS_ANSWERED_TO_LEAVE }))).toBe(true);
  });

  it('never leaves a dispatcher that answered a probe: it is alive, only slow on this stream (the idle timeout still applies)', () => {
    expect(shouldLeaveSilentDispatcher(tally({ oursAnswered: true, oursUnanswered: 2, othersAnswered: 5 }))).toBe(false);
  });
});
