import { runFanout } from "./lib/fanout-scenario.js";
import { ensureFileLimit } from "./lib/report.js";

ensureFileLimit(import.meta.filename);
await runFanout({
  scenario: "fanout-light",
  description: "1,000 SSE subscribers on one mailbox, 200 messages at 20/s",
  subscribers: 1000,
  messages: 200,
  rate: 20,
  maxP99Ms: 20,
  nchan: "p99",
  settleTimeoutMs: 30_000,
});
