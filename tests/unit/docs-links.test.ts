/**
 * The documentation's relative links resolve: every `[text](target)` in README.md, docs/*.md and the
 * examples' and tests' READMEs that points into the repository names a file or folder that exists,
 * and a `#anchor` (in the same file or in another .md file) names a heading that file has, as GitHub
 * makes anchors of headings. Links inside code (fences and `spans`) are not links. README.md also
 * stays short (the rest lives in docs/, each file linked from README's Documentation list).
 */
import * as fs from "fs";
import * as path from "path";

const repo = path.resolve(__dirname, "..", "..");

/** GitHub's heading anchor: markup dropped, lower case, punctuation removed, spaces to hyphens; repeats get -1, -2, ... */
export function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, "")
    .replace(/ /g, "-");
}

/** The text outside fenced code blocks, line numbers kept (fence lines and their content become empty lines). */
function prose(text: string): string {
  let fence = false;
  return text
    .split("\n")
    .map((line) => {
      if (/^\s*(```|~~~)/.test(line)) {
        fence = !fence;
        return "";
      }
      return fence ? "" : line;
    })
    .join("\n");
}

export function anchorsOf(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of prose(text).split("\n")) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = slug(m[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

export interface Link {
  line: number;
  target: string;
}

/** Inline links outside code; link text may span lines. Code spans are blanked first (keeping newlines). */
export function linksOf(text: string): Link[] {
  const noCode = prose(text).replace(/(`+)[\s\S]*?\1/g, (span) => span.replace(/[^\n]/g, " "));
  const links: Link[] = [];
  const re = /\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g;
  for (let m = re.exec(noCode); m; m = re.exec(noCode)) {
    links.push({ line: noCode.slice(0, m.index).split("\n").length, target: m[1] });
  }
  return links;
}

/** What is wrong with each relative link of `file` (repository-relative), as "file:line: target: why". */
export function brokenLinks(file: string, io: { read(abs: string): string | undefined; exists(abs: string): boolean } = disk): string[] {
  const { read, exists } = io;
  const abs = path.join(repo, file);
  const text = read(abs);
  if (text === undefined) return [`${file}: cannot be read`];
  const problems: string[] = [];
  for (const { line, target } of linksOf(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, ...
    const [rawPath, anchor] = target.split("#", 2) as [string, string | undefined];
    const where = `${file}:${line}: ${target}`;
    const dest = rawPath === "" ? abs : path.resolve(path.dirname(abs), decodeURIComponent(rawPath));
    if (!dest.startsWith(repo + path.sep) && dest !== repo) {
      problems.push(`${where}: points outside the repository`);
      continue;
    }
    if (rawPath !== "" && !exists(dest)) {
      problems.push(`${where}: ${path.relative(repo, dest)} does not exist`);
      continue;
    }
    if (anchor === undefined) continue;
    if (!dest.endsWith(".md")) {
      problems.push(`${where}: an anchor into a file that is not Markdown`);
      continue;
    }
    const destText = read(dest) ?? "";
    if (!anchorsOf(destText).has(anchor)) problems.push(`${where}: ${path.relative(repo, dest)} has no heading #${anchor}`);
  }
  return problems;
}

const disk = {
  read(abs: string): string | undefined {
    try {
      return fs.readFileSync(abs, "utf8");
    } catch {
      return undefined;
    }
  },
  exists: (abs: string) => fs.existsSync(abs),
};

function markdownFiles(): string[] {
  const inDir = (dir: string, deep: boolean): string[] => {
    const full = path.join(repo, dir);
    if (!fs.existsSync(full)) return [];
    return fs.readdirSync(full, { withFileTypes: true }).flatMap((e) => {
      const rel = path.join(dir, e.name);
      if (e.isDirectory()) return deep && e.name !== "node_modules" ? inDir(rel, deep) : [];
      return e.name.endsWith(".md") ? [rel] : [];
    });
  };
  const readmes = (dir: string) =>
    fs.existsSync(path.join(repo, dir))
      ? fs.readdirSync(path.join(repo, dir)).map((d) => path.join(dir, d, "README.md")).filter((f) => fs.existsSync(path.join(repo, f)))
      : [];
  return ["README.md", ...inDir("docs", true), ...readmes("examples"), ...readmes("tests")];
}

describe("the checker itself", () => {
  it("makes GitHub's anchors", () => {
    expect(slug("Run it: `pulumi up`")).toBe("run-it-pulumi-up");
    expect(slug("500 nodes and more, on paper")).toBe("500-nodes-and-more-on-paper");
    expect(slug("During `pulumi up`, from the node")).toBe("during-pulumi-up-from-the-node");
    expect(slug("What `.ci/install` installs")).toBe("what-ciinstall-installs");
    expect(slug("From Python, Go and YAML")).toBe("from-python-go-and-yaml");
    expect([...anchorsOf("# A\n## Notes\n```sh\n# not a heading\n```\n### Notes\n")]).toEqual(["a", "notes", "notes-1"]);
  });

  it("finds links across lines and ignores links in code", () => {
    const text = "see [Container\nOutputs](x.md#y), `[not](a-link)`, and\n```\n[nor](this)\n```\n[last](#z)";
    expect(linksOf(text)).toEqual([
      { line: 1, target: "x.md#y" },
      { line: 6, target: "#z" },
    ]);
  });

  it("reports a missing file, a missing heading and a missing same-file anchor", () => {
    const files: Record<string, string> = {
      [path.join(repo, "docs/a.md")]: "# A\n## Here\n[ok](#here) [bad](#gone) [ok](b.md#there) [bad](b.md#nowhere) [bad](c.md)\n",
      [path.join(repo, "docs/b.md")]: "# B\n## There\n",
    };
    const io = { read: (abs: string) => files[abs], exists: (abs: string) => abs in files };
    expect(brokenLinks("docs/a.md", io)).toEqual([
      "docs/a.md:3: #gone: docs/a.md has no heading #gone",
      "docs/a.md:3: b.md#nowhere: docs/b.md has no heading #nowhere",
      "docs/a.md:3: c.md: docs/c.md does not exist",
    ]);
  });
});

describe("the documentation", () => {
  const files = markdownFiles();

  it("covers README.md, docs/ and the READMEs of the examples and tests", () => {
    expect(files).toContain("README.md");
    expect(files.filter((f) => f.startsWith("docs/")).length).toBeGreaterThan(0);
    expect(files).toContain("tests/e2e/README.md");
  });

  it.each(files)("%s: every relative link and anchor resolves", (file) => {
    expect(brokenLinks(file)).toEqual([]);
  });

  it("README.md reads in ten minutes: at most 350 lines, linking every file of docs/", () => {
    const readme = fs.readFileSync(path.join(repo, "README.md"), "utf8");
    expect(readme.replace(/\n$/, "").split("\n").length).toBeLessThanOrEqual(350);
    const linked = new Set(linksOf(readme).map((l) => l.target.split("#")[0]));
    const docs = files.filter((f) => f.startsWith("docs/"));
    expect(docs.filter((f) => !linked.has(f))).toEqual([]);
  });
});
