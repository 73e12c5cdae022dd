/**
 * A private key in a form ssh2 parses, for the program's read of a node (node-read.ts).
 *
 * The command provider's Go SSH (golang.org/x/crypto/ssh ParseRawPrivateKey) takes PKCS#1, SEC1,
 * PKCS#8 ("BEGIN PRIVATE KEY", what openssl and @pulumi/tls's privateKeyPem hand out) and OpenSSH
 * keys. ssh2 (lib/protocol/keyParser.js) takes OpenSSH keys and the old PEM forms of RSA and ECDSA,
 * but no PKCS#8 at all: a node reached with such a key was applied to but never read, so its drift
 * went unseen. Node's crypto reads every PEM and DER form (and encrypted PKCS#8), so a key ssh2
 * refuses is read with it and written back as ssh2 takes it: RSA as PKCS#1, ECDSA as SEC1, Ed25519
 * as an OpenSSH key (Node has no writer for that one; its layout is openssh's PROTOCOL.key). The
 * converted key lives in memory only, unencrypted, for the one session.
 */
import { createPrivateKey, KeyObject, randomBytes } from "crypto";
import { utils } from "ssh2";

/** The key and its passphrase as ssh2 takes them; throws (without any key material) when neither can read it. */
export function keyForSsh2(key: string | Buffer, passphrase?: string): { privateKey: string | Buffer; passphrase?: string } {
  const parsed = utils.parseKey(key, passphrase);
  if (!(parsed instanceof Error)) return { privateKey: key, passphrase };
  let k: KeyObject;
  try {
    k = createPrivateKey({ key, format: "pem", passphrase });
  } catch (e) {
    // Both parsers' words, so an operator sees why (a wrong passphrase, a truncated key); neither
    // quotes the key.
    throw new Error(`its private key cannot be read (${parsed.message}; ${(e as Error).message})`);
  }
  switch (k.asymmetricKeyType) {
    case "rsa":
      return { privateKey: k.export({ type: "pkcs1", format: "pem" }).toString() };
    case "ec":
      return { privateKey: k.export({ type: "sec1", format: "pem" }).toString() };
    case "ed25519":
      return { privateKey: openSshEd25519(k) };
    default:
      throw new Error(`its private key is a ${k.asymmetricKeyType} key; the read takes rsa, ecdsa and ed25519 keys`);
  }
}

/** An Ed25519 key in openssh's "openssh-key-v1" container, unencrypted (PROTOCOL.key). */
function openSshEd25519(k: KeyObject): string {
  const jwk = k.export({ format: "jwk" });
  const seed = Buffer.from(jwk.d!, "base64url");
  const pub = Buffer.from(jwk.x!, "base64url");
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const str = (b: Buffer | string) => {
    const v = typeof b === "string" ? Buffer.from(b) : b;
    return Buffer.concat([u32(v.length), v]);
  };
  const type = "ssh-ed25519";
  const publicBlob = Buffer.concat([str(type), str(pub)]);
  const check = randomBytes(4);
  let secret = Buffer.concat([check, check, str(type), str(pub), str(Buffer.concat([seed, pub])), str("")]);
  // Padded with 1, 2, 3, ... to the cipher's block size (8 for "none").
  const pad = (8 - (secret.length % 8)) % 8;
  secret = Buffer.concat([secret, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);
  const body = Buffer.concat([Buffer.from("openssh-key-v1\0"), str("none"), str("none"), str(""), u32(1), str(publicBlob), str(secret)]);
  const lines = body.toString("base64").match(/.{1,70}/g)!;
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join("\n")}\n-----END OPENSSH PRIVATE KEY-----\n`;
}
