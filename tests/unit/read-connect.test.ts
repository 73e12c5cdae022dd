/**
 * readNode never rejects and never outlives its limits: a key ssh2 cannot parse (a PKCS#8
 * "BEGIN PRIVATE KEY" ed25519 key, which the command provider's Go SSH takes and @pulumi/tls hands
 * out) makes it a "not read" node at once, and leaves no timer behind. No node is needed: ssh2
 * parses the key before it dials.
 */
import { generateKeyPairSync } from "crypto";
import { readNode } from "../../provider/src/component/node-read";

const pkcs8 = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString();

test("a private key ssh2 cannot parse gives an unread node at once, not a rejection", async () => {
  const t0 = Date.now();
  const r = await readNode({ host: "127.0.0.1", port: 9, user: "root", privateKey: pkcs8, hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl" }, "true", "", { connectSeconds: 5, totalSeconds: 30 });
  expect(r.reached).toBe(false);
  expect(r.error).toMatch(/^cannot use its connection: .*(key|format)/i);
  expect(r.error).not.toContain("PRIVATE KEY-----");
  expect(Date.now() - t0).toBeLessThan(2_000);
});
