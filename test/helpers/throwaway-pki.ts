import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** PEM texts of a throwaway CA and of a server certificate (and key) it signed for 127.0.0.1. */
export interface ThrowawayPki {
  readonly ca: string;
  readonly key: string;
  readonly cert: string;
}

/**
 * Makes a P-256 CA and a 127.0.0.1 server certificate with the openssl CLI, for HTTPS servers that stand
 * in for push services (the tests' push service, the bench's push sink); `name` goes in the CA's CN.
 */
export async function makeThrowawayPki(name: string): Promise<ThrowawayPki> {
  const dir = await mkdtemp(join(tmpdir(), "herald-pki-"));
  try {
    const openssl = (...args: string[]) => run("/usr/bin/openssl", args, { cwd: dir });
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    await openssl(
      ...["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
      ...["-subj", `/CN=${name}`, "-addext", "basicConstraints=critical,CA:TRUE"],
      ...["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
    );
    await openssl("req", "-new", ...ec, "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr");
    await writeFile(
      join(dir, "server.ext"),
      "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    );
    await openssl(
      ...["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-days", "2"],
      ...["-set_serial", `0x${randomBytes(8).toString("hex")}`, "-extfile", "server.ext", "-out", "server.pem"],
    );
    const read = (file: string) => readFile(join(dir, file), "utf8");
    return { ca: await read("ca.pem"), key: await read("server.key"), cert: await read("server.pem") };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
