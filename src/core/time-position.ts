import type { MailboxStore, StreamPosition } from "../store/mailbox-store.js";
import { START, storeCall } from "./read-plan.js";

/** Store reads one time search may take: a binary search over seqs needs about log2(retained). */
export const MAX_TIME_SEARCH_STEPS = 64;

/**
 * Where in one mailbox the first message at or after `sinceMs` is: the
 * position just before it (undefined: from the earliest retained). A binary
 * search over seqs, each step a one-message read, relying on a mailbox's
 * times rising with its seqs.
 */
export async function positionBeforeTime(
  store: MailboxStore,
  mailbox: string,
  sinceMs: number,
): Promise<StreamPosition | undefined> {
  const first = await storeCall(store.read(mailbox, START, 1));
  const earliest = first.messages[0];
  if (first.log === undefined) return undefined;
  const epoch = first.log.epoch;
  if (earliest === undefined) return { epoch, seq: first.log.lastSeq };
  if (earliest.timeMs >= sinceMs) return undefined;
  // `low` is a retained message older than sinceMs; the answer lies in [low, high].
  let low = earliest.seq;
  let high = first.log.lastSeq;
  for (let step = 0; low < high && step < MAX_TIME_SEARCH_STEPS; step++) {
    const middle = Math.ceil((low + high) / 2);
    const read = await storeCall(store.read(mailbox, { epoch, seq: middle - 1 }, 1));
    if (read.log?.epoch !== epoch) return undefined;
    const found = read.messages[0];
    if (found !== undefined && found.timeMs < sinceMs) low = found.seq;
    else high = middle - 1;
  }
  return { epoch, seq: low };
}
