import { createHmac, randomUUID } from "node:crypto";
import { DEFAULT_HMAC_HEADER, type HookScheme, keyFromSecret } from "./verifiers.js";

export interface SignInput {
  readonly secret: string;
  readonly body: Buffer;
  readonly nowSeconds: number;
  /** Delivery id to send; a fresh one is made when absent. */
  readonly id?: string;
  /** Header for hmac-sha256. */
  readonly header?: string;
}

/** The headers a sender of `scheme` would attach to `body`, in the order it would send them. */
export type Signer = (input: SignInput) => Record<string, string>;

function hmac(scheme: HookScheme, secret: string, ...parts: (string | Buffer)[]): Buffer {
  const mac = createHmac("sha256", keyFromSecret(scheme, secret));
  for (const part of parts) mac.update(part);
  return mac.digest();
}

export const SIGNERS: Readonly<Record<HookScheme, Signer>> = {
  github: (input) => ({
    "X-GitHub-Delivery": input.id ?? randomUUID(),
    "X-Hub-Signature-256": `sha256=${hmac("github", input.secret, input.body).toString("hex")}`,
  }),
  stripe: (input) => {
    const t = String(input.nowSeconds);
    return { "Stripe-Signature": `t=${t},v1=${hmac("stripe", input.secret, `${t}.`, input.body).toString("hex")}` };
  },
  "standard-webhooks": (input) => {
    const id = input.id ?? `msg_${randomUUID().replaceAll("-", "")}`;
    const t = String(input.nowSeconds);
    const signature = hmac("standard-webhooks", input.secret, `${id}.${t}.`, input.body).toString("base64");
    return { "webhook-id": id, "webhook-timestamp": t, "webhook-signature": `v1,${signature}` };
  },
  "hmac-sha256": (input) => ({
    [input.header ?? DEFAULT_HMAC_HEADER]: hmac("hmac-sha256", input.secret, input.body).toString("hex"),
  }),
};
