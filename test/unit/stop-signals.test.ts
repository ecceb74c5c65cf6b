import { describe, expect, it } from 'vitest';
import { stopSignalCounter } from '../../src/demo/demo-children';

describe('stopSignalCounter: one Ctrl-C that npm forwards is one signal, a later one is a second', () => {
  it('first, then the same within the window, then again after it', () => {
    let now = 1_000;
    const seen = stopSignalCounter(500, () => now);
    expect(seen()).toBe('first');
    now += 3; // npm's forwarded copy of the terminal's Ctrl-C
    expect(seen()).toBe('same');
    now += 496;
    expect(seen()).toBe('same');
    now += 1;
    expect(seen()).toBe('again');
    expect(seen()).toBe('again');
  });
});
