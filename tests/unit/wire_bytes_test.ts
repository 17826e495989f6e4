// allocBytes/copyBytes: small buffers are separate, zeroed views of shared blocks that already have their ArrayBuffer; large ones stand alone.

import { test } from "../harness.ts";
import { assert, assertEquals } from "../assert.ts";
import { allocBytes, copyBytes } from "../../lib/wire/bytes.ts";

test("bytes: small buffers never overlap, start zeroed and keep what is written to them", () => {
  const sizes = Array.from({ length: 3000 }, (_, i) => (i * 37) % 200);
  const views = sizes.map((n, i) => {
    const v = allocBytes(n);
    assertEquals(v.byteLength, n);
    assert(v.every((b) => b === 0), `buffer ${i} starts zeroed`);
    v.fill(i & 0xff);
    return v;
  });
  // 3000 buffers of up to 199 bytes span several 64 KiB blocks: none was handed out twice.
  views.forEach((v, i) => assert(v.every((b) => b === (i & 0xff)), `buffer ${i} kept its bytes`));
  assert(new Set(views.map((v) => v.buffer)).size > 1, "more than one block was used");
});

test("bytes: a large buffer has an ArrayBuffer of its own; copyBytes copies", () => {
  const big = allocBytes(5000);
  assertEquals(big.byteLength, 5000);
  assertEquals(big.buffer.byteLength, 5000);
  const src = new Uint8Array([1, 2, 3]);
  const copy = copyBytes(src);
  assertEquals(copy, src);
  src[0] = 9;
  assertEquals(copy[0], 1);
});
