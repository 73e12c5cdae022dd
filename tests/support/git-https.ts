/**
 * A git repository served over HTTPS from this machine, for `pulumi package add <git URL>`: the CLI
 * takes only https:// (or git://, fetched as https) git sources and clones them with go-git, so a
 * local repository needs a server. `git http-backend` (git's own smart-HTTP CGI) behind a Node.js
 * HTTPS server on 127.0.0.1, with a throwaway CA the CLI is told to trust (SSL_CERT_FILE).
 *
 * It listens on port 443 and is named `localhost`, because a git URL with a port breaks `pulumi
 * package add` (v3.276): after the install, the package's source is kept without its scheme
 * (`127.0.0.1:PORT/owner/repo.git/...`, packageresolution's naiveResolution), which does not parse
 * as a URL, so `plugin.IsLocalPluginPath` takes it for a local path and package_add.go dereferences
 * the nil result of its os.Stat. `localhost/owner/repo.git/...` parses as a git source.
 */
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as https from "https";
import * as path from "path";

export interface GitServer {
  /** https://localhost/<name>.git */
  url: string;
  /** The CA certificate file to trust (SSL_CERT_FILE for the CLI). */
  caFile: string;
  close(): Promise<void>;
}

function openssl(args: string[], cwd: string): void {
  const r = spawnSync("openssl", args, { cwd, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
}

/**
 * Serves the bare repository `<dir>/<name>.git` (made by the caller; `name` is `owner/repo`: the CLI
 * takes a git source's first path segment as the package's namespace) over HTTPS.
 */
export async function serveGit(dir: string, name: string): Promise<GitServer> {
  openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.crt", "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign"], dir);
  openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr"], dir);
  fs.writeFileSync(path.join(dir, "ext.cnf"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  openssl(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf", "-out", "server.crt"], dir);
  const server = https.createServer({ key: fs.readFileSync(path.join(dir, "server.key")), cert: fs.readFileSync(path.join(dir, "server.crt")) }, (req, res) => {
    const u = new URL(req.url ?? "/", "https://127.0.0.1");
    const cgi = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        GIT_PROJECT_ROOT: dir,
        GIT_HTTP_EXPORT_ALL: "1",
        REQUEST_METHOD: req.method ?? "GET",
        PATH_INFO: decodeURIComponent(u.pathname),
        QUERY_STRING: u.search.replace(/^\?/, ""),
        CONTENT_TYPE: req.headers["content-type"] ?? "",
        ...(req.headers["content-encoding"] ? { HTTP_CONTENT_ENCODING: String(req.headers["content-encoding"]) } : {}),
        ...(req.headers["git-protocol"] ? { GIT_PROTOCOL: String(req.headers["git-protocol"]) } : {}),
        REMOTE_ADDR: "127.0.0.1",
      },
    });
    req.pipe(cgi.stdin);
    // CGI output: headers, a blank line, then the body.
    let head = Buffer.alloc(0);
    let started = false;
    cgi.stdout.on("data", (d: Buffer) => {
      if (started) return void res.write(d);
      head = Buffer.concat([head, d]);
      const end = head.indexOf("\r\n\r\n") >= 0 ? head.indexOf("\r\n\r\n") : head.indexOf("\n\n");
      if (end < 0) return;
      const sep = head.indexOf("\r\n\r\n") >= 0 ? 4 : 2;
      let status = 200;
      for (const line of head.subarray(0, end).toString().split(/\r?\n/)) {
        const i = line.indexOf(":");
        if (i < 0) continue;
        const k = line.slice(0, i).trim();
        const v = line.slice(i + 1).trim();
        if (k.toLowerCase() === "status") status = Number(v.split(" ")[0]);
        else res.setHeader(k, v);
      }
      res.writeHead(status);
      started = true;
      res.write(head.subarray(end + sep));
    });
    cgi.on("close", () => res.end());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(new Error(`serving git on 127.0.0.1:443 (the tests run as root): ${e.code === "EADDRINUSE" ? "the port is in use" : e.message}`)));
    server.listen(443, "127.0.0.1", resolve);
  });
  return {
    url: `https://localhost/${name}.git`,
    caFile: path.join(dir, "ca.crt"),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
