import { Pool } from "undici";
import { now } from "./sse-swarm.js";

/** Publishes over a few keep-alive connections; each message carries its send time in `data.t`. */
export class Publisher {
  readonly pool: Pool;
  acknowledged = 0;
  failed = 0;

  constructor(url: string, connections = 4) {
    this.pool = new Pool(url, { connections, pipelining: 1 });
  }

  /** `extra` goes inside `data` after `t`; `fields` are top-level fields before it, e.g. `"key":"cpu",`. */
  async publish(mailbox: string, extra = "", fields = ""): Promise<number> {
    const response = await this.pool.request({
      method: "POST",
      path: `/v1/mailboxes/${encodeURIComponent(mailbox)}/messages`,
      headers: { "content-type": "application/json" },
      body: `{${fields}"data":{"t":${now()}${extra}}}`,
    });
    const text = await response.body.text();
    if (response.statusCode !== 201) {
      this.failed += 1;
      throw new Error(`publish to ${mailbox}: ${response.statusCode} ${text}`);
    }
    this.acknowledged += 1;
    return Number(/"seq":(\d+)/.exec(text)?.[1]);
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
