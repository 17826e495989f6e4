// A small seeded pseudo-random generator, so that every random choice in the
// consensus core and the simulator replays exactly from its seed.

/** A source of randomness that the pure parts of the library take as input. */
export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [0, n). */
  int(n: number): number;
}

/**
 * xoshiro128** seeded through SplitMix32: fast, 2^128 - 1 period, good
 * statistical quality. Not for cryptography.
 */
export class SeededRng implements Rng {
  #s0: number;
  #s1: number;
  #s2: number;
  #s3: number;

  /** @param seed any 32-bit integer (other numbers are truncated) */
  constructor(seed: number) {
    let x = seed >>> 0;
    const splitmix = (): number => {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#s0 = splitmix();
    this.#s1 = splitmix();
    this.#s2 = splitmix();
    this.#s3 = splitmix();
  }

  /** The next 32 random bits as an unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.#s1, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.#s1 << 9) >>> 0;
    this.#s2 ^= this.#s0;
    this.#s3 ^= this.#s1;
    this.#s1 ^= this.#s2;
    this.#s0 ^= this.#s3;
    this.#s2 ^= t;
    this.#s3 = rotl(this.#s3, 11);
    return result;
  }

  next(): number {
    return this.nextU32() / 0x1_0000_0000;
  }

  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) {
      throw new RangeError(`Rng bound must be a positive integer, got ${n}`);
    }
    return Math.floor(this.next() * n);
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.nextU32() & 0xff;
    return out;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
