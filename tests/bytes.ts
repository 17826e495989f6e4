// Deterministic test payloads, shared by the transport suite and the interop child process (no test registration here).

/** Deterministic bytes for a (seed, length), cheap to regenerate for comparison. */
export function pattern(seed: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761 + 1) >>> 0;
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}
