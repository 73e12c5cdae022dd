/** A CA of its own and a server certificate it signed for one IP address, made by openssl in `dir`. */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export interface PrivateCa {
  caPem: string;
  certPem: string;
  keyPem: string;
}

export function privateCa(dir: string, ip: string): PrivateCa {
  const run = (...args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  };
  run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=containerd-node test CA");
  run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", `/CN=${ip}`);
  fs.writeFileSync(path.join(dir, "ext"), `subjectAltName=IP:${ip}\n`);
  run("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext");
  const read = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");
  return { caPem: read("ca.pem"), certPem: read("srv.pem"), keyPem: read("srv.key") };
}
