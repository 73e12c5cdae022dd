/**
 * tools/pulumi/build.sh, what it checks before it builds and what it builds again: run for real (with
 * sh) from a scratch copy of tools/pulumi, against a scratch copy of ../shared/third_party, with a
 * stand-in `go` first on PATH that records each call and "builds" a small script that answers
 * `version`/`-version` with the version its -ldflags stamp and `plugin install` as the CLI does.
 * Nothing is compiled and nothing outside the scratch directory is read or written but
 * third_party's copy source.
 */
import { spawnSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

jest.setTimeout(60_000);

const REPO = path.resolve(__dirname, "..", "..");
const TOOLS = path.join(REPO, "tools", "pulumi");
const THIRD_PARTY = process.env.THIRD_PARTY_DIR ?? path.resolve(REPO, "..", "shared", "third_party");
const LOCK = JSON.parse(fs.readFileSync(path.join(REPO, "package-lock.json"), "utf8")) as { packages: Record<string, { version?: string }> };
const PULUMI_VERSION = LOCK.packages["node_modules/@pulumi/pulumi"].version as string;
const COMMAND_VERSION = LOCK.packages["node_modules/@pulumi/command"].version as string;

const FAKE_GO = `#!/bin/sh
printf '%s|%s|%s\\n' "$PWD" "$GOFLAGS" "$*" >>"$FAKE_GO_LOG"
case "$1" in
  env) echo go1.0.0-fake ;;
  mod)
    if [ "$2" = download ]; then
      printf '{\\n\\t"Path": "github.com/pulumi/pulumi-yaml",\\n\\t"Dir": "%s",\\n\\t"Sum": "h1:x"\\n}\\n' "$FAKE_YAML_DIR"
    fi ;;
  build)
    out="" ver=""
    while [ $# -gt 0 ]; do
      case "$1" in
        -o) out=$2; shift ;;
        -ldflags) ver=$(printf '%s\\n' "$2" | sed -n 's/.*Version=\\([^ ]*\\).*/\\1/p'); shift ;;
      esac
      shift
    done
    mkdir -p "$(dirname "$out")"
    cat >"$out" <<EOF
#!/bin/sh
# built in $PWD
case "\\$1" in
  version|-version) echo "$ver" ;;
  plugin) mkdir -p "\\$PULUMI_HOME/plugins/\\$3-\\$4-v\\$5" && cp "\\$7" "\\$PULUMI_HOME/plugins/\\$3-\\$4-v\\$5/pulumi-\\$3-\\$4" ;;
esac
EOF
    chmod +x "$out" ;;
esac
`;

/** A language host on PATH that tells its version with -version, as pulumi's own do. */
const hostAt = (version: string) => `#!/bin/sh\n[ "$1" = -version ] && echo ${version}\n`;
/** A CLI on PATH at a version, which reports a provider's schema version as get-schema would. */
const cliAt = (version: string, providerVersion: string) =>
  `#!/bin/sh\ncase "$1" in\n  version) echo ${version} ;;\n  package) echo '{"name": "command", "version": "${providerVersion}"}' ;;\nesac\n`;
/** A YAML host on PATH: its version is the module version its build info records. */
const YAML_ON_PATH = `#!/bin/sh\n# mod\tgithub.com/pulumi/pulumi-yaml\tv1.25.0\th1:x\n`;

interface Scratch {
  dir: string;
  repo: string;
  thirdParty: string;
  fakeBin: string;
  goLog: string;
  yamlDir: string;
}

let scratch: Scratch;

function makeScratch(commandVersion = COMMAND_VERSION): Scratch {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "toolchain-build-"));
  const repo = path.join(dir, "repo");
  fs.cpSync(TOOLS, path.join(repo, "tools", "pulumi"), { recursive: true });
  fs.writeFileSync(
    path.join(repo, "package-lock.json"),
    JSON.stringify({ packages: { "node_modules/@pulumi/pulumi": { version: PULUMI_VERSION }, "node_modules/@pulumi/command": { version: commandVersion } } }),
  );
  const thirdParty = path.join(dir, "third_party");
  fs.cpSync(THIRD_PARTY, thirdParty, { recursive: true });
  spawnSync("chmod", ["-R", "u+w", thirdParty]);
  const fakeBin = path.join(dir, "fake-bin");
  fs.mkdirSync(fakeBin);
  fs.writeFileSync(path.join(fakeBin, "go"), FAKE_GO, { mode: 0o755 });
  // The YAML host on PATH unless a test takes it away: most tests are about the other tools.
  fs.writeFileSync(path.join(fakeBin, "pulumi-language-yaml"), YAML_ON_PATH, { mode: 0o755 });
  const yamlDir = path.join(dir, "pulumi-yaml");
  fs.mkdirSync(path.join(yamlDir, "cmd", "pulumi-language-yaml"), { recursive: true });
  fs.writeFileSync(path.join(yamlDir, "go.mod"), "module github.com/pulumi/pulumi-yaml\n");
  fs.writeFileSync(
    path.join(yamlDir, "cmd", "pulumi-language-yaml", "main.go"),
    "package main\n\nfunc main() { NewLanguageHost(engineAddress, tracing, false /* useRPCLoader */) }\n",
  );
  return { dir, repo, thirdParty, fakeBin, goLog: path.join(dir, "go.log"), yamlDir };
}

function buildSh(s: Scratch, args: string[] = [], extra: Record<string, string> = {}) {
  const env: Record<string, string> = {
    PATH: [s.fakeBin, path.dirname(process.execPath), "/usr/bin", "/bin"].join(":"),
    HOME: s.dir,
    LANG: "C.UTF-8",
    THIRD_PARTY_DIR: s.thirdParty,
    PULUMI_HOME: path.join(s.dir, "pulumi-home"),
    FAKE_GO_LOG: s.goLog,
    FAKE_YAML_DIR: s.yamlDir,
    ...extra,
  };
  const r = spawnSync("sh", [path.join(s.repo, "tools", "pulumi", "build.sh"), ...args], { env, encoding: "utf8", timeout: 50_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, out: r.stdout + r.stderr };
}

/** The stand-in go's calls: [directory, GOFLAGS, arguments]. */
function goCalls(s: Scratch): [string, string, string][] {
  if (!fs.existsSync(s.goLog)) return [];
  return fs
    .readFileSync(s.goLog, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => l.split("|") as [string, string, string]);
}
const builds = (s: Scratch) => goCalls(s).filter(([, , a]) => a.startsWith("build "));
/** Which binaries the builds wrote (their -o), by file name. */
const built = (s: Scratch) => builds(s).map(([, , a]) => path.basename(/-o (\S+)/.exec(a)?.[1] ?? "?"));
const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");
function reportLine(stdout: string, tool: string) {
  return stdout.split("\n").find((l) => l.startsWith(`${tool} `)) ?? "";
}
/** Changes one byte of a file (the first letter a becomes b). */
function changeOneByte(file: string) {
  const b = fs.readFileSync(file);
  const i = b.indexOf("a".charCodeAt(0));
  b[i] = "b".charCodeAt(0);
  fs.writeFileSync(file, b);
}

const describeWithSources = fs.existsSync(path.join(THIRD_PARTY, "SHA256SUMS")) ? describe : describe.skip;

afterEach(() => {
  if (scratch) fs.rmSync(scratch.dir, { recursive: true, force: true });
});

describeWithSources("tools/pulumi/build.sh", () => {
  it("builds every tool once, then a warm run builds nothing and reports every tool ok", () => {
    scratch = makeScratch();
    const first = buildSh(scratch);
    expect(first.out).not.toMatch(/did not build|refusing/);
    expect(first.status).toBe(0);
    expect(built(scratch).sort()).toEqual(["pulumi", "pulumi-language-go", "pulumi-language-nodejs", "pulumi-language-python", "pulumi-resource-command"]);
    fs.rmSync(scratch.goLog);
    const second = buildSh(scratch);
    expect(second.status).toBe(0);
    expect(builds(scratch)).toEqual([]);
    const check = buildSh(scratch, ["--check"]);
    expect(check.status).toBe(0);
    for (const tool of ["pulumi", "pulumi-language-nodejs", "pulumi-language-python", "pulumi-language-go", "pulumi-resource-command"]) {
      expect(reportLine(check.stdout, tool)).toMatch(new RegExp(`^${tool} ok ${scratch.dir}/`));
    }
  });

  describe("checks the sources from ../shared/third_party against its SHA256SUMS and the pins before it builds", () => {
    it("refuses a file with one byte changed, naming the file, the sha256 SHA256SUMS records and the one found", () => {
      scratch = makeScratch();
      const file = path.join(scratch.thirdParty, "pulumi-go-provider", "provider.go");
      const expected = /^([0-9a-f]{64}) {2}\.\/pulumi-go-provider\/provider\.go$/m.exec(fs.readFileSync(path.join(scratch.thirdParty, "SHA256SUMS"), "utf8"))?.[1];
      expect(expected).toBe(sha256(file));
      changeOneByte(file);
      for (const args of [[], ["--check"]]) {
        const r = buildSh(scratch, args);
        expect(r.status).not.toBe(0);
        expect(r.stderr).toContain(`${file}: sha256 expected ${expected}, found ${sha256(file)}`);
        expect(builds(scratch)).toEqual([]);
      }
      expect(fs.existsSync(path.join(scratch.repo, ".cache", "tools", "bin", "pulumi"))).toBe(false);
    });

    it("refuses a SHA256SUMS changed along with the file, naming the folder and its tree hash, expected and found", () => {
      scratch = makeScratch();
      const file = path.join(scratch.thirdParty, "pulumi-language-nodejs", "main.go");
      const before = sha256(file);
      changeOneByte(file);
      const sums = path.join(scratch.thirdParty, "SHA256SUMS");
      fs.writeFileSync(sums, fs.readFileSync(sums, "utf8").replace(before, sha256(file)));
      const r = buildSh(scratch);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(new RegExp(`${scratch.thirdParty}/pulumi-language-nodejs/: .*tree hash expected [0-9a-f]{64}, found [0-9a-f]{64}`));
      expect(builds(scratch)).toEqual([]);
    });

    it("refuses a README that records another release than the one pinned", () => {
      scratch = makeScratch();
      const readme = path.join(scratch.thirdParty, "README.md");
      fs.writeFileSync(readme, fs.readFileSync(readme, "utf8").replace("| v1.3.0 | 3bfb720d", "| v1.3.1 | 3bfb720d"));
      const r = buildSh(scratch);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/README\.md records pulumi-go-provider at v1\.3\.1 3bfb720d\S*, build\.sh pins v1\.3\.0 3bfb720d/);
      expect(builds(scratch)).toEqual([]);
    });

    it("copies only the files SHA256SUMS lists into the build", () => {
      scratch = makeScratch();
      fs.writeFileSync(path.join(scratch.thirdParty, "pulumi-command", "provider", "extra.go"), "package main\n");
      expect(buildSh(scratch).status).toBe(0);
      const copy = path.join(scratch.repo, ".cache", "tools", "src", "pulumi-command", "provider");
      expect(fs.existsSync(path.join(copy, "go.mod"))).toBe(true);
      expect(fs.existsSync(path.join(copy, "extra.go"))).toBe(false);
    });
  });

  it("refuses to build the command provider under another version than its source's, and says what to do", () => {
    scratch = makeScratch("1.3.0");
    for (const args of [[], ["--check"]]) {
      const r = buildSh(scratch, args);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toContain("package-lock.json asks for @pulumi/command 1.3.0");
      expect(r.stderr).toContain("is v1.2.1");
      expect(r.stderr).toContain("npm install --save-exact @pulumi/command@1.2.1");
      expect(r.stderr).toContain("update command_tag and third_party_pins in tools/pulumi/build.sh");
      expect(builds(scratch)).toEqual([]);
    }
    expect(fs.existsSync(path.join(scratch.dir, "pulumi-home", "plugins", "resource-command-v1.3.0"))).toBe(false);
  });

  describe("takes a tool from PATH only when it is not older than the one it builds", () => {
    it("language hosts: an older one is not used, a newer one is", () => {
      scratch = makeScratch();
      fs.writeFileSync(path.join(scratch.fakeBin, "pulumi-language-nodejs"), hostAt("v3.100.0"), { mode: 0o755 });
      fs.writeFileSync(path.join(scratch.fakeBin, "pulumi-language-python"), hostAt("v3.300.0"), { mode: 0o755 });
      const r = buildSh(scratch, ["--check"]);
      expect(reportLine(r.stdout, "pulumi-language-nodejs")).toBe("pulumi-language-nodejs missing: not built yet");
      expect(r.stderr).toContain(`${scratch.fakeBin}/pulumi-language-nodejs is v3.100.0, older than the v3.259.0 built here: using ours`);
      expect(reportLine(r.stdout, "pulumi-language-python")).toBe(`pulumi-language-python ok ${scratch.fakeBin}/pulumi-language-python`);
    });

    it("the YAML host: one whose version cannot be told is not used", () => {
      scratch = makeScratch();
      fs.writeFileSync(path.join(scratch.fakeBin, "pulumi-language-yaml"), "#!/bin/sh\n", { mode: 0o755 });
      const r = buildSh(scratch, ["--check"]);
      expect(reportLine(r.stdout, "pulumi-language-yaml")).toBe("pulumi-language-yaml missing: not built yet");
    });

    it("the CLI and the command provider: an older provider is not used, one at our version is", () => {
      scratch = makeScratch();
      fs.writeFileSync(path.join(scratch.fakeBin, "pulumi"), cliAt("v3.300.0", "1.0.0"), { mode: 0o755 });
      fs.writeFileSync(path.join(scratch.fakeBin, "pulumi-resource-command"), "#!/bin/sh\n", { mode: 0o755 });
      let r = buildSh(scratch, ["--check"]);
      expect(reportLine(r.stdout, "pulumi")).toBe(`pulumi ok ${scratch.fakeBin}/pulumi`);
      expect(reportLine(r.stdout, "pulumi-resource-command")).toBe("pulumi-resource-command missing: not built yet");
      expect(r.stderr).toContain("PULUMI_IGNORE_AMBIENT_PLUGINS=true");
      fs.writeFileSync(path.join(scratch.fakeBin, "pulumi"), cliAt("v3.300.0", COMMAND_VERSION), { mode: 0o755 });
      r = buildSh(scratch, ["--check"]);
      expect(reportLine(r.stdout, "pulumi-resource-command")).toMatch(new RegExp(`^pulumi-resource-command ok ${scratch.fakeBin}/pulumi-resource-command`));
      fs.writeFileSync(path.join(scratch.fakeBin, "pulumi"), cliAt("v3.100.0", COMMAND_VERSION), { mode: 0o755 });
      r = buildSh(scratch, ["--check"]);
      expect(reportLine(r.stdout, "pulumi")).toBe("pulumi missing: not built yet (tools/pulumi/build.sh builds it)");
    });
  });

  describe("builds a tool again when what it is built from changed, not only when it is missing", () => {
    it("the CLI, when go.sum changes by one byte: --check calls it stale, the next run builds it and nothing else", () => {
      scratch = makeScratch();
      expect(buildSh(scratch).status).toBe(0);
      changeOneByte(path.join(scratch.repo, "tools", "pulumi", "go.sum"));
      const check = buildSh(scratch, ["--check"]);
      expect(check.status).not.toBe(0);
      expect(reportLine(check.stdout, "pulumi")).toMatch(/^pulumi missing: stale: /);
      fs.rmSync(scratch.goLog);
      expect(buildSh(scratch).status).toBe(0);
      expect(built(scratch)).toEqual(["pulumi"]);
    });

    it("a language host, when the go.sum it builds with changes; the provider, when its build flags change", () => {
      scratch = makeScratch();
      expect(buildSh(scratch).status).toBe(0);
      changeOneByte(path.join(scratch.repo, "tools", "pulumi", "hosts", "pulumi-language-go.go.sum"));
      fs.rmSync(scratch.goLog);
      expect(buildSh(scratch).status).toBe(0);
      expect(built(scratch)).toEqual(["pulumi-language-go"]);
      // The provider's build flags: the same source under another version is another binary.
      const script = path.join(scratch.repo, "tools", "pulumi", "build.sh");
      fs.writeFileSync(script, fs.readFileSync(script, "utf8").replace('command_ldflags="-s -w -X', 'command_ldflags="-s -X'));
      fs.rmSync(scratch.goLog);
      const r = buildSh(scratch);
      expect(r.status).toBe(0);
      expect(built(scratch)).toEqual(["pulumi-resource-command"]);
      const plugin = path.join(scratch.dir, "pulumi-home", "plugins", `resource-command-v${COMMAND_VERSION}`, "pulumi-resource-command");
      expect(fs.readFileSync(plugin, "utf8")).toBe(fs.readFileSync(path.join(scratch.repo, ".cache", "tools", "provider", "pulumi-resource-command"), "utf8"));
    });
  });

  it("builds with the versions go.mod and go.sum pin: no go mod tidy, -mod=readonly, the language hosts with the go.mod and go.sum kept in tools/pulumi/hosts", () => {
    scratch = makeScratch();
    expect(buildSh(scratch).status).toBe(0);
    const calls = goCalls(scratch);
    expect(calls.filter(([, , a]) => /^mod tidy/.test(a))).toEqual([]);
    expect(builds(scratch).length).toBe(5);
    for (const [, flags] of builds(scratch)) expect(flags.split(" ")).toContain("-mod=readonly");
    for (const host of ["pulumi-language-nodejs", "pulumi-language-python", "pulumi-language-go"]) {
      for (const f of ["go.mod", "go.sum"]) {
        const used = fs.readFileSync(path.join(scratch.repo, ".cache", "tools", "src", host, f), "utf8");
        expect(used).toBe(fs.readFileSync(path.join(TOOLS, "hosts", `${host}.${f}`), "utf8"));
      }
    }
  });

  it("builds the YAML host only from a module whose files hash to the pinned sum", () => {
    scratch = makeScratch();
    fs.rmSync(path.join(scratch.fakeBin, "pulumi-language-yaml"));
    const r = buildSh(scratch);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/pulumi-yaml v1\.25\.0: its files hash to h1:\S+, pinned h1:\S+/);
    expect(built(scratch)).not.toContain("pulumi-language-yaml");
    expect(reportLine(r.stdout, "pulumi-language-yaml")).toBe("pulumi-language-yaml missing: not built yet");
  });

  it("is clean POSIX sh for shellcheck", () => {
    const r = spawnSync("shellcheck", ["-s", "sh", path.join(TOOLS, "build.sh")], { encoding: "utf8" });
    expect(r.error).toBeUndefined();
    expect(r.stdout).toBe("");
    expect(r.status).toBe(0);
  });
});
