import type { MailboxStore, StoredMessage } from "../store/mailbox-store.js";
import { encodeSingleCursor } from "./cursor.js";
import { EMPTY_EPOCH, storeCall } from "./read-plan.js";

/** Keys a latest-value snapshot answers when the client names no limit. */
export const DEFAULT_LATEST_KEYS = 100;
/** Keys one latest-value snapshot answers at most. */
export const MAX_LATEST_KEYS = 1000;

/** GET …/latest: the current value of each key, and where a subscriber continues from. */
export interface LatestAnswer {
  /** The newest message of each key (see LatestRead), in seq order, each with the cursor just after it. */
  readonly messages: { readonly message: StoredMessage; readonly cursor: string }[];
  /**
   * The log's head when the snapshot was taken: subscribing with it delivers
   * every later message once, and none of the snapshot again. For a mailbox
   * that does not exist, seq 0 with no epoch, as a read of it answers.
   */
  readonly cursor: string;
}

/** Takes one mailbox's latest-value snapshot of at most `maxKeys` keys; a store that cannot answer is a 503. */
export async function latestSnapshot(store: MailboxStore, mailbox: string, maxKeys: number): Promise<LatestAnswer> {
  const { log, messages } = await storeCall(store.latest(mailbox, maxKeys));
  const epoch = log?.epoch ?? EMPTY_EPOCH;
  return {
    messages: messages.map((message) => ({ message, cursor: encodeSingleCursor(mailbox, epoch, message.seq) })),
    cursor: encodeSingleCursor(mailbox, epoch, log?.lastSeq ?? 0),
  };
}
