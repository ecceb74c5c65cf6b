import fc from 'fast-check';

/** The largest uint64, as the proto allows it. */
export const MAX_U64 = 2n ** 64n - 1n;

/** The values where narrowing a uint64 to a JS number can go wrong (docs/protocol.md, "64-bit fields"). */
export const U64_EDGES: readonly bigint[] = [
  0n,
  1n,
  2n,
  2n ** 32n - 1n,
  2n ** 32n,
  2n ** 42n,
  2n ** 42n + 1n,
  2n ** 53n - 2n,
  2n ** 53n - 1n,
  2n ** 53n,
  2n ** 53n + 1n,
  2n ** 63n - 1n,
  2n ** 63n,
  MAX_U64,
];

/**
 * A uint64 over the whole range: the edges above, or any value up to 2^64-1
 * (fast-check biases it towards small values and the bounds, and shrinks it
 * towards 0).
 */
export function u64(): fc.Arbitrary<bigint> {
  return fc.oneof({ arbitrary: fc.constantFrom(...U64_EDGES), weight: 1 }, { arbitrary: fc.bigInt({ min: 0n, max: MAX_U64 }), weight: 2 });
}
