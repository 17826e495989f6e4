// Allocation of small byte buffers that are kept (entry encodings): views into shared blocks that already have their ArrayBuffer.

/** Size of one shared block. */
const BLOCK = 64 * 1024;
/** Larger requests get a buffer of their own. */
const SMALL = 1024;

let block = new Uint8Array(new ArrayBuffer(BLOCK));
let used = 0;

/**
 * A zeroed buffer of `n` bytes for internal data kept a long time, such as
 * an entry's encoding. Small ones are views into a shared 64 KiB block.
 *
 * Why: JavaScript engines make a small typed array without an ArrayBuffer
 * (V8 up to 64 bytes, JavaScriptCore larger) and create one, copying, the
 * first time anything reads `.buffer` — which cbor-x does for every byte
 * string it writes or reads. For log entries of a few dozen bytes that was
 * about a tenth of a follower's CPU in the cluster benchmark on Bun. A view
 * into a block built on an ArrayBuffer has it already.
 *
 * Never hand these to users: `.buffer` of one shows its neighbours.
 * @internal
 */
export function allocBytes(n: number): Uint8Array {
  if (n > SMALL) return new Uint8Array(new ArrayBuffer(n));
  if (used + n > BLOCK) {
    block = new Uint8Array(new ArrayBuffer(BLOCK));
    used = 0;
  }
  const out = block.subarray(used, used + n);
  used += n;
  return out;
}

/** A copy of `bytes` in memory from {@link allocBytes}. @internal */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  const out = allocBytes(bytes.byteLength);
  out.set(bytes);
  return out;
}
