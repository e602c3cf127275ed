import { type HeraldProcess, startBare, startHerald } from "./herald-process.js";
import { nchanAvailable, startNchan } from "./nchan-process.js";

/**
 * A server a bench can run the same workload against: Herald, and the two
 * references every ratio in the results is taken against — the bare
 * node:http baseline (the runtime's limit for this work) and Nchan (nginx's
 * pub/sub module, one worker). Paths differ; the load does not.
 */
export interface Target {
  readonly name: "herald" | "bare" | "nchan";
  start(): Promise<HeraldProcess>;
  /** Where a message for `mailbox` is POSTed. */
  publishPath(mailbox: string): string;
  /** An SSE subscription to `mailbox` that gets what is published from now on. */
  ssePath(mailbox: string): string;
  /**
   * True when the server numbers messages itself (`"seq":` in what it sends and answers); false for
   * Nchan, which relays the body as published, so a publisher puts its own `seq` in the body.
   */
  readonly numbers: boolean;
}

export const HERALD: Target = {
  name: "herald",
  start: () => startHerald([]),
  publishPath: (mailbox) => `/v1/mailboxes/${encodeURIComponent(mailbox)}/messages`,
  ssePath: (mailbox) => `/v1/mailboxes/${encodeURIComponent(mailbox)}/events?cursor=now`,
  numbers: true,
};

export const BARE: Target = { ...HERALD, name: "bare", start: startBare };

export const NCHAN: Target = {
  name: "nchan",
  start: () => startNchan(),
  publishPath: (mailbox) => `/pub/${encodeURIComponent(mailbox)}`,
  ssePath: (mailbox) => `/sub/sse/${encodeURIComponent(mailbox)}`,
  numbers: false,
};

/** The references this machine can run: Nchan only where Debian's nginx and its module are installed. */
export function references(): Target[] {
  const nchan = nchanAvailable();
  if (!nchan.ok) console.warn(`Nchan skipped: ${nchan.reason}`);
  return nchan.ok ? [BARE, NCHAN] : [BARE];
}
