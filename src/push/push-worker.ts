import { parentPort, workerData } from "node:worker_threads";
import type { PushTarget } from "../store/push-subscription-store.js";
import type { PushContent } from "./push-payload.js";
import { createWebPushSender, type WebPushSenderOptions } from "./push-sender.js";

/** One push for the worker to send; answered with `{ id, outcome }`. */
export interface PushRequest {
  readonly id: number;
  readonly subscription: PushTarget;
  readonly content: PushContent;
}

// The worker thread's side of worker-sender.ts: encryption and TLS happen here, off the server's event loop.
if (parentPort !== null) {
  const port = parentPort;
  const sender = createWebPushSender(workerData as WebPushSenderOptions);
  port.on("message", (request: PushRequest) => {
    void sender
      .send(request.subscription, request.content)
      .then((outcome) => port.postMessage({ id: request.id, outcome }));
  });
}
