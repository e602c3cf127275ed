import { parseArgs } from "node:util";
import { argumentError, ConfigError } from "../errors.js";
import { checkVapidKeys, createVapidKeys } from "../push/vapid.js";

export const VAPID_USAGE = `Usage: herald vapid create --subject mailto:you@example.com [--json]

Makes the key pair Herald signs Web Push requests with (VAPID, RFC 8292) and
prints the "push" section for the config file. The private key is printed once:
keep it in a secret store and point privateKeyEnv at it, or inline it as
privateKey. Browsers subscribed under one key pair cannot be pushed to with
another, so make it once per deployment (all nodes share it).

Options:
  --subject URL   a mailto: address or https: URL push services may contact
  --json          print one object {"publicKey", "privateKey", "subject", "config"}
  -h, --help      show this help`;

/** The environment variable the printed config reads the private key from. */
export const VAPID_PRIVATE_KEY_ENV = "HERALD_VAPID_PRIVATE_KEY";

/** `herald vapid create ...` */
export async function vapidCommand(argv: readonly string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === "--help" || sub === "-h" || rest.includes("--help") || rest.includes("-h")) {
    console.log(VAPID_USAGE);
    return;
  }
  if (sub !== "create") throw new ConfigError(`unknown vapid command "${sub}"; try: herald vapid create --help`);
  let values: { subject?: string; json?: boolean };
  try {
    ({ values } = parseArgs({
      args: [...rest],
      options: { subject: { type: "string" }, json: { type: "boolean" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw argumentError(error);
  }
  if (values.subject === undefined) throw new ConfigError("vapid create needs --subject mailto:you@example.com");
  const keys = checkVapidKeys({ ...createVapidKeys(), subject: values.subject }, "--subject");
  const config = {
    push: { vapid: { publicKey: keys.publicKey, privateKeyEnv: VAPID_PRIVATE_KEY_ENV, subject: keys.subject } },
  };
  if (values.json) {
    console.log(JSON.stringify({ ...keys, config }));
    return;
  }
  console.log(`Private key (shown once; store it as a secret):\n  ${keys.privateKey}\n`);
  console.log(`Set it in the environment of every Herald node:\n  ${VAPID_PRIVATE_KEY_ENV}=${keys.privateKey}\n`);
  console.log(`Add this section to the config file:\n  ${JSON.stringify(config)}`);
}
