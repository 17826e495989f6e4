// Primitives: ids, digests, log positions, byte helpers, seeded randomness.

export * from "./bytes.ts";
export * from "./digest.ts";
export * from "./ids.ts";
export * from "./cursor.ts";
export * from "./rng.ts";
