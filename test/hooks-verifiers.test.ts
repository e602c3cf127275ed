import { createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import { compileTemplate, TemplateError } from "../src/hooks/template.js";
import {
  checkSignature,
  type HeaderLookup,
  type HookScheme,
  keyFromSecret,
  SIGNATURE_READERS,
  type VerifyOptions,
  type VerifyOutcome,
} from "../src/hooks/verifiers.js";

interface Delivery {
  readonly header: HeaderLookup;
  readonly body: Buffer;
}

function request(headers: Record<string, string>, body: string | Buffer): Delivery {
  const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
  return { header: (name) => lower[name.toLowerCase()], body: Buffer.from(body) };
}

/** Both halves as the server runs them: the headers first, then the body. */
function verifier(scheme: HookScheme): (delivery: Delivery, options: VerifyOptions) => VerifyOutcome {
  return (delivery, options) => {
    const claim = SIGNATURE_READERS[scheme](delivery.header, options);
    return typeof claim === "string" ? claim : checkSignature(claim, delivery.body, options);
  };
}

const verifyGithub = verifier("github");
const verifyStripe = verifier("stripe");
const verifyStandardWebhooks = verifier("standard-webhooks");
const verifyHmacSha256 = verifier("hmac-sha256");

function options(keys: Buffer[], nowSeconds: number, extra: Partial<VerifyOptions> = {}): VerifyOptions {
  return { keys, nowSeconds, toleranceSeconds: 300, header: "X-Signature", ...extra };
}

describe("GitHub (X-Hub-Signature-256)", () => {
  // https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries#testing-the-webhook-payload-validation
  const secret = "It's a Secret to Everybody";
  const signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
  const keys = [keyFromSecret("github", secret)];

  it("accepts GitHub's documented test vector", () => {
    expect(verifyGithub(request({ "X-Hub-Signature-256": signature }, "Hello, World!"), options(keys, 0))).toBe("ok");
  });

  it("refuses the vector with one body byte changed, a wrong secret, or no header", () => {
    expect(verifyGithub(request({ "X-Hub-Signature-256": signature }, "Hello, World?"), options(keys, 0))).toBe(
      "mismatch",
    );
    expect(
      verifyGithub(
        request({ "X-Hub-Signature-256": signature }, "Hello, World!"),
        options([keyFromSecret("github", "It's a secret to everybody")], 0),
      ),
    ).toBe("mismatch");
    expect(verifyGithub(request({}, "Hello, World!"), options(keys, 0))).toBe("missing");
    expect(
      verifyGithub(request({ "X-Hub-Signature-256": signature.slice(7) }, "Hello, World!"), options(keys, 0)),
    ).toBe("malformed");
  });

  it("accepts any of several keys (rotation)", () => {
    const rotated = [keyFromSecret("github", "new secret"), ...keys];
    expect(verifyGithub(request({ "X-Hub-Signature-256": signature }, "Hello, World!"), options(rotated, 0))).toBe(
      "ok",
    );
  });
});

describe("Standard Webhooks", () => {
  // The test vector of the Standard Webhooks reference libraries (standard-webhooks/standard-webhooks, svix).
  const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const headers = {
    "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
  };
  const body = '{"test": 2432232314}';
  const keys = [keyFromSecret("standard-webhooks", secret)];

  it("accepts the published test vector at its own time", () => {
    expect(verifyStandardWebhooks(request(headers, body), options(keys, 1614265330))).toBe("ok");
  });

  it("finds the matching signature among several, and ignores other versions", () => {
    const several = { ...headers, "webhook-signature": `v1a,abc v1,bm9wZQ== ${headers["webhook-signature"]}` };
    expect(verifyStandardWebhooks(request(several, body), options(keys, 1614265330))).toBe("ok");
  });

  it("refuses the vector outside the tolerance, either side", () => {
    expect(verifyStandardWebhooks(request(headers, body), options(keys, 1614265330 + 301))).toBe("stale");
    expect(verifyStandardWebhooks(request(headers, body), options(keys, 1614265330 - 301))).toBe("stale");
    expect(verifyStandardWebhooks(request(headers, body), options(keys, 1614265330 + 300))).toBe("ok");
  });

  it("refuses a changed id, timestamp or body: all three are signed", () => {
    const at = options(keys, 1614265330);
    expect(verifyStandardWebhooks(request({ ...headers, "webhook-id": "msg_other" }, body), at)).toBe("mismatch");
    expect(verifyStandardWebhooks(request({ ...headers, "webhook-timestamp": "1614265331" }, body), at)).toBe(
      "mismatch",
    );
    expect(verifyStandardWebhooks(request(headers, '{"test":2432232314}'), at)).toBe("mismatch");
  });
});

describe("Stripe", () => {
  const secret = "whsec_test_secret";
  const body = '{"id":"evt_1","type":"charge.succeeded"}';
  const sign = (t: number, key = secret) => createHmac("sha256", key).update(`${t}.${body}`).digest("hex");
  const keys = [keyFromSecret("stripe", secret)];

  it("uses the whole whsec_ secret as the key, and accepts one of several v1 signatures", () => {
    const header = `t=1000,v0=${"0".repeat(64)},v1=${sign(1000, "other")},v1=${sign(1000)}`;
    expect(verifyStripe(request({ "Stripe-Signature": header }, body), options(keys, 1000))).toBe("ok");
  });

  it("refuses a stale timestamp and a missing t or v1", () => {
    expect(verifyStripe(request({ "Stripe-Signature": `t=1000,v1=${sign(1000)}` }, body), options(keys, 1301))).toBe(
      "stale",
    );
    expect(verifyStripe(request({ "Stripe-Signature": `v1=${sign(1000)}` }, body), options(keys, 1000))).toBe(
      "malformed",
    );
    expect(verifyStripe(request({ "Stripe-Signature": "t=1000" }, body), options(keys, 1000))).toBe("malformed");
  });
});

describe("generic HMAC-SHA256", () => {
  it("reads the configured header, with or without a sha256= prefix", () => {
    const hex = createHmac("sha256", "s3cret").update("{}").digest("hex");
    const keys = [keyFromSecret("hmac-sha256", "s3cret")];
    const at = options(keys, 0, { header: "X-Custom-Sig" });
    expect(verifyHmacSha256(request({ "X-Custom-Sig": hex }, "{}"), at)).toBe("ok");
    expect(verifyHmacSha256(request({ "X-Custom-Sig": `sha256=${hex}` }, "{}"), at)).toBe("ok");
    expect(verifyHmacSha256(request({ "X-Signature": hex }, "{}"), at)).toBe("missing");
    expect(verifyHmacSha256(request({ "X-Custom-Sig": hex }, "{} "), at)).toBe("mismatch");
  });
});

describe("templates", () => {
  const payload = {
    repository: { full_name: "acme/rocket" },
    commits: [{ id: "abc" }],
    count: 3,
    flag: false,
    nested: { a: 1 },
    nothing: null,
  };

  it("renders dotted paths, array indexes and scalars; a missing path renders empty", () => {
    const template = compileTemplate(
      "{{repository.full_name}}@{{ commits.0.id }} n={{count}} {{flag}} [{{missing.x}}]",
    );
    expect(template.render(payload, 1000)).toBe("acme/rocket@abc n=3 false []");
    expect(compileTemplate("{{nested}}|{{nothing}}").render(payload, 1000)).toBe('{"a":1}|');
  });

  it("never evaluates: prototype properties and expressions are not paths", () => {
    expect(compileTemplate("{{constructor.name}}{{__proto__}}{{toString}}").render(payload, 1000)).toBe("");
    expect(() => compileTemplate("{{count + 1}}")).toThrow(TemplateError);
    expect(() => compileTemplate("{{process.exit()}}")).toThrow(TemplateError);
    expect(() => compileTemplate("{{unclosed")).toThrow(TemplateError);
  });

  it("cuts the result at the bound", () => {
    expect(compileTemplate("{{repository.full_name}}!").render(payload, 4)).toBe("acme");
  });
});
