import { HeraldClientError, networkError, responseError } from "../../client/src/errors.js";
import { ConfigError } from "../errors.js";
import { describeFailure, fail, flagOrEnv, parseCommand, URL_HELP } from "./remote.js";

export const TOKEN_USAGE = `Usage: herald token --sub NAME --mailbox PATTERN [--mailbox ...] [options]

Mints a subscriber token through POST /v1/tokens and prints it (nothing else on
stdout, so TOKEN=$(herald token ...) works). Needs an API key with the "tokens" right.

Options:
  --sub NAME          who the token is for (shows in logs)
  --mailbox PATTERN   a mailbox the token may read; * is a wildcard; repeat for several
  --publish PATTERN   a mailbox the token may also publish to; repeatable
  --info JSON         what others see of this reader in presence, e.g. '{"name":"Alice"}'
  --ttl SECONDS       lifetime (default: the server's)
  --api-key KEY       the API key (HERALD_API_KEY)
  --json              print {"token", "expiresAt"}
${URL_HELP}
  -h, --help          show this help`;

export async function tokenCommand(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const { values, positionals, url, help } = parseCommand(
    argv,
    {
      sub: { type: "string" },
      mailbox: { type: "string", multiple: true },
      publish: { type: "string", multiple: true },
      ttl: { type: "string" },
      info: { type: "string" },
      "api-key": { type: "string" },
      json: { type: "boolean" },
    },
    env,
  );
  if (help) {
    console.log(TOKEN_USAGE);
    return;
  }
  if (positionals.length > 0) throw new ConfigError(`unexpected arguments: ${positionals.join(" ")}`);
  const sub = values.sub as string | undefined;
  const mailboxes = values.mailbox as string[] | undefined;
  if (!sub || !mailboxes) throw new ConfigError(`--sub and at least one --mailbox are required\n\n${TOKEN_USAGE}`);
  const request: Record<string, unknown> = { sub, mailboxes };
  if (values.publish) request.publish = values.publish;
  if (values.info !== undefined) {
    try {
      request.info = JSON.parse(values.info as string);
    } catch {
      throw new ConfigError(`--info must be a JSON object, got ${JSON.stringify(values.info)}`);
    }
  }
  if (values.ttl !== undefined) {
    const ttl = Number(values.ttl);
    if (!Number.isInteger(ttl) || ttl < 1)
      throw new ConfigError(`--ttl must be a whole number of seconds, got "${values.ttl}"`);
    request.ttl = ttl;
  }
  const apiKey = flagOrEnv(values, "api-key", env, "HERALD_API_KEY");
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (apiKey !== undefined) headers.Authorization = `Bearer ${apiKey}`;
  try {
    let response: Response;
    try {
      response = await fetch(`${url}/v1/tokens`, { method: "POST", headers, body: JSON.stringify(request) });
    } catch (error) {
      throw networkError(error);
    }
    if (response.status === 404 || response.status === 405) {
      fail(`${url} does not mint tokens (POST /v1/tokens answered ${response.status}); this server has no auth`);
      return;
    }
    if (!response.ok) throw await responseError(response);
    const minted = (await response.json()) as { token: string; expiresAt: string };
    if (values.json) console.log(JSON.stringify(minted));
    else {
      console.log(minted.token);
      console.error(`herald: token for ${sub} expires ${minted.expiresAt}`);
    }
  } catch (error) {
    const hint =
      error instanceof HeraldClientError && error.status === 401 && apiKey === undefined
        ? "; pass --api-key or set HERALD_API_KEY"
        : "";
    fail(`${describeFailure(error, url)}${hint}`);
  }
}
