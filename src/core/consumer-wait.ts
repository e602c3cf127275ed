import type { StreamSink } from "./delivery.js";

/**
 * Waits for a consumer to read what is queued for it. A slow reader is waited
 * for as long as it takes; one that reads nothing at all for `stallMs` (its
 * queue no smaller than it was `stallMs` earlier) is stalled, and the wait resolves
 * false so the caller can cut it, as nginx's `send_timeout` does. Without the
 * deadline a consumer that stopped reading during a paced catch-up would hold
 * its connection, its queue and a page of messages until the client went away.
 */
export async function waitForConsumer(sink: StreamSink, stallMs: number): Promise<boolean> {
  let drained = false;
  const whenDrained = sink.whenDrained().then(() => {
    drained = true;
  });
  let queued = sink.bufferedBytes();
  let timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      await Promise.race([
        whenDrained,
        new Promise((resolve) => {
          timer = setTimeout(resolve, stallMs);
        }),
      ]);
      clearTimeout(timer);
      if (drained) return true;
      const now = sink.bufferedBytes();
      if (now >= queued) return false;
      queued = now;
    }
  } finally {
    clearTimeout(timer);
  }
}
