import { Pool } from "undici";
import { now } from "./sse-swarm.js";
import { HERALD, type Target } from "./targets.js";

/**
 * Publishes over a few keep-alive connections; each message carries its send time in `data.t`.
 * To a target that does not number messages (Nchan) each body carries the publisher's own
 * `seq` per mailbox, which subscribers read as they read Herald's: one publish in flight per
 * mailbox keeps it in order.
 */
export class Publisher {
  readonly pool: Pool;
  readonly #target: Target;
  readonly #seqs = new Map<string, number>();
  acknowledged = 0;
  failed = 0;

  constructor(url: string, connections = 4, target: Target = HERALD) {
    this.pool = new Pool(url, { connections, pipelining: 1 });
    this.#target = target;
  }

  /** `extra` goes inside `data` after `t`; `fields` are top-level fields before it, e.g. `"key":"cpu",`. */
  async publish(mailbox: string, extra = "", fields = ""): Promise<number> {
    const own = this.#target.numbers ? undefined : (this.#seqs.get(mailbox) ?? 0) + 1;
    if (own !== undefined) this.#seqs.set(mailbox, own);
    const response = await this.pool.request({
      method: "POST",
      path: this.#target.publishPath(mailbox),
      headers: { "content-type": "application/json" },
      body: `{${own === undefined ? "" : `"seq":${own},`}${fields}"data":{"t":${now()}${extra}}}`,
    });
    const text = await response.body.text();
    // Nchan answers 202 when nobody is subscribed yet.
    if (response.statusCode !== 201 && response.statusCode !== 202) {
      this.failed += 1;
      throw new Error(`publish to ${mailbox}: ${response.statusCode} ${text}`);
    }
    this.acknowledged += 1;
    return own ?? Number(/"seq":(\d+)/.exec(text)?.[1]);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
