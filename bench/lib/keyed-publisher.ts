import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { Publisher, sleep } from "./publisher.js";
import { percentile, round1 } from "./report.js";

/**
 * Publishes keyed messages at a fixed rate from a worker thread, so that a load
 * process busy reading thousands of sockets does not delay the publishes (and
 * with them the rate). Message n updates key `keys[n]` (`"key":"k<key>"`) and
 * carries `data` {t, k: key, v: that key's version, pad}.
 */
export interface KeyedPublishPlan {
  readonly url: string;
  readonly mailbox: string;
  /** Messages per second. */
  readonly rate: number;
  /** The key index of each message, in publish order. */
  readonly keys: Uint8Array;
  readonly keyCount: number;
  readonly pad: string;
  readonly connections: number;
}

export interface KeyedPublishResult {
  readonly acknowledged: number;
  readonly failures: number;
  /** Per key: the highest seq acknowledged, and the version published with it. */
  readonly ackSeq: Int32Array;
  readonly ackValue: Int32Array;
  /** Acknowledgements where a key's newer version got the lower seq (publishes in flight at once). */
  readonly reorders: number;
  /** From the first publish to the last acknowledgement. */
  readonly publishMs: number;
  /** How late the publish calls ran behind their schedule. */
  readonly scheduleLagP99Ms: number;
  readonly scheduleLagMaxMs: number;
  /** Publish request to acknowledgement. */
  readonly ackP50Ms: number;
  readonly ackP99Ms: number;
}

/** Runs the plan in a worker; `onStart` is called as the first publish goes out. */
export function publishKeyed(plan: KeyedPublishPlan, onStart: () => void): Promise<KeyedPublishResult> {
  return new Promise((resolve, reject) => {
    // The worker runs this TypeScript file: it registers tsx's loader first (Node 20 workers do not
    // inherit the parent's), whichever way the bench was started.
    const entry = `import(${JSON.stringify(import.meta.resolve("tsx/esm/api"))})
      .then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`;
    const worker = new Worker(entry, { eval: true, workerData: plan });
    worker.on("message", (message: { started?: true; result?: KeyedPublishResult }) => {
      if (message.started) onStart();
      if (message.result) resolve(message.result);
    });
    worker.once("error", reject);
    worker.once("exit", (code) => {
      if (code !== 0) reject(new Error(`publisher worker exited with ${code}`));
    });
  });
}

async function run(plan: KeyedPublishPlan): Promise<KeyedPublishResult> {
  const publisher = new Publisher(plan.url, plan.connections);
  const ackSeq = new Int32Array(plan.keyCount);
  const ackValue = new Int32Array(plan.keyCount);
  const versions = new Int32Array(plan.keyCount);
  const total = plan.keys.length;
  const lag = new Float64Array(total);
  const ack = new Float64Array(total);
  let reorders = 0;
  let failures = 0;
  const inFlight: Promise<void>[] = [];
  const interval = 1000 / plan.rate;
  const started = performance.now();
  parentPort?.postMessage({ started: true });
  for (let n = 0; n < total; n++) {
    const due = started + n * interval;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const sentAt = performance.now();
    lag[n] = Math.max(0, sentAt - due);
    const key = plan.keys[n] as number;
    const value = (versions[key] as number) + 1;
    versions[key] = value;
    const extra = `,"k":${key},"v":${value},"pad":"${plan.pad}"`;
    const sent = publisher
      .publish(plan.mailbox, extra, `"key":"k${key}",`)
      .then((seq) => {
        ack[n] = performance.now() - sentAt;
        if (seq > (ackSeq[key] as number)) {
          if (value < (ackValue[key] as number)) reorders += 1;
          ackSeq[key] = seq;
          ackValue[key] = value;
        } else if (value > (ackValue[key] as number)) reorders += 1;
      })
      .catch(() => {
        failures += 1;
      });
    inFlight.push(sent);
  }
  await Promise.all(inFlight);
  const publishMs = performance.now() - started;
  await publisher.close();
  lag.sort();
  ack.sort();
  return {
    acknowledged: publisher.acknowledged,
    failures,
    ackSeq,
    ackValue,
    reorders,
    publishMs: Math.round(publishMs),
    scheduleLagP99Ms: round1(percentile(lag, 99)),
    scheduleLagMaxMs: round1(lag[total - 1] ?? Number.NaN),
    ackP50Ms: round1(percentile(ack, 50)),
    ackP99Ms: round1(percentile(ack, 99)),
  };
}

if (!isMainThread && parentPort) {
  const result = await run(workerData as KeyedPublishPlan);
  parentPort.postMessage({ result });
}
