// Bounding a transport handshake by a deadline and an abort signal, shared by the QUIC adapters.

/** The message of an error, or the thing thrown as text. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Waits for `attempt` (a handshake), rejecting with "no QUIC handshake within
 * N ms" after `timeoutMs` — QUIC has no RST, so a dial to a closed port only
 * ends this way — or with the signal's reason when aborted. A failure of the
 * attempt itself becomes "Cannot dial <where>: <cause>". Leaves no timer or
 * listener behind; the attempt itself is not cancelled (the caller cleans up).
 */
export async function handshakeWithin<T>(
  attempt: Promise<T>,
  where: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const cancelled = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Cannot dial ${where}: no QUIC handshake within ${timeoutMs} ms`)),
      timeoutMs,
    );
    if (signal !== undefined) {
      onAbort = () => reject(signal.reason);
      signal.addEventListener("abort", onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([
      attempt.catch((err) => {
        throw new Error(`Cannot dial ${where}: ${messageOf(err)}`, { cause: err });
      }),
      cancelled,
    ]);
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener("abort", onAbort);
  }
}
