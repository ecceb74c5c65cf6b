/**
 * The container image (Dockerfile, .dockerignore). No container daemon runs
 * here, so this test reads the Dockerfile with a small parser and checks what
 * a broken image would show a user: a build that cannot compile for lack of
 * a file, an entry point or .proto that is not there, a SQLite driver pruned
 * away, a root user that runAsNonRoot refuses, a shell as PID 1 that swallows
 * SIGTERM, ports that are not the ones the CLI listens on. What the build and
 * the runtime need is derived from package.json, the tsconfigs and the code,
 * not written out again. Last, the files the build stage would receive (the
 * context minus .dockerignore, restricted to its COPY sources) are copied to a
 * temp dir and type-checked there with the build's own tsconfig.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SERVE_FLAGS } from '../../src/cli/serve-command';
import { XDS_FLAGS } from '../../src/cli/xds-command';
import type { FlagSpec } from '../../src/cli/flags';
import { PROTO_ROOT } from '../../src/protocol/service';

const root = path.resolve(__dirname, '..', '..');
const posix = path.posix;

// ---------------------------------------------------------------- parsing

interface Instruction {
  /** Upper-case keyword: FROM, RUN, COPY, ... */
  keyword: string;
  /** The arguments, continuation lines joined with a space. */
  args: string;
  /** 1-based line the instruction starts on. */
  line: number;
}

interface Stage {
  image: string;
  name: string | undefined;
  instructions: Instruction[];
}

/**
 * A Dockerfile's instructions: `\` continues a line, `#` lines are comments
 * (also between continued lines), blank lines inside a continuation are
 * dropped, as Docker does.
 */
function parseInstructions(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!;
    if (/^\s*(#|$)/.test(first)) continue;
    const start = i + 1;
    const parts: string[] = [];
    let current = first;
    while (/\\\s*$/.test(current)) {
      parts.push(current.replace(/\\\s*$/, '').trim());
      i++;
      while (i < lines.length && /^\s*(#|$)/.test(lines[i]!)) i++;
      current = lines[i] ?? '';
    }
    parts.push(current.trim());
    const joined = parts.filter((p) => p !== '').join(' ');
    const m = /^(\S+)\s*(.*)$/.exec(joined)!;
    out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!, line: start });
  }
  return out;
}

function parseStages(instructions: Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === 'FROM') {
      const words = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const as = words.findIndex((w) => w.toLowerCase() === 'as');
      stages.push({ image: words[0]!, name: as >= 0 ? words[as + 1] : undefined, instructions: [] });
    } else {
      if (stages.length === 0) throw new Error(`line ${ins.line}: ${ins.keyword} before the first FROM`);
      stages[stages.length - 1]!.instructions.push(ins);
    }
  }
  return stages;
}

/** The JSON array of an exec-form instruction, or undefined for the shell form. */
function execForm(args: string): string[] | undefined {
  if (!args.trim().startsWith('[')) return undefined;
  const value = JSON.parse(args) as unknown;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new Error(`not an exec form: ${args}`);
  return value as string[];
}

interface Copy {
  from: string | undefined;
  /** Normalised: no leading ./, no trailing /. */
  sources: string[];
  /** Absolute, resolved against the stage's WORKDIR. */
  dest: string;
  line: number;
}

const normalise = (p: string): string => posix.normalize(p).replace(/\/+$/, '').replace(/^\.\//, '') || '.';

/** COPY (and ADD) instructions of a stage, with each destination resolved against the WORKDIR in force. */
function copies(stage: Stage): Copy[] {
  const out: Copy[] = [];
  let workdir = '/';
  for (const ins of stage.instructions) {
    if (ins.keyword === 'WORKDIR') workdir = posix.resolve(workdir, ins.args.trim());
    if (ins.keyword !== 'COPY' && ins.keyword !== 'ADD') continue;
    let rest = ins.args.trim();
    let from: string | undefined;
    for (let m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest); m !== null; m = /^--([a-z-]+)(?:=(\S+))?\s+/.exec(rest)) {
      if (m[1] === 'from') from = m[2];
      rest = rest.slice(m[0].length);
    }
    const words = execForm(rest) ?? rest.split(/\s+/);
    const dest = words[words.length - 1]!;
    out.push({ from, sources: words.slice(0, -1).map(normalise), dest: posix.resolve(workdir, dest), line: ins.line });
  }
  return out;
}

function workdirOf(stage: Stage): string {
  let workdir = '/';
  for (const ins of stage.instructions) if (ins.keyword === 'WORKDIR') workdir = posix.resolve(workdir, ins.args.trim());
  return workdir;
}

/**
 * Where a copied source lands. A directory's contents go into the destination;
 * a file goes under it when it names a directory (ends in / or several
 * sources), else it is the destination.
 */
function landing(copy: Copy, isDir: boolean, rawDestIsDir: boolean, source: string): string {
  if (isDir) return copy.dest;
  return rawDestIsDir || copy.sources.length > 1 ? posix.join(copy.dest, posix.basename(source)) : copy.dest;
}

/** `key="value"` and `key=value` pairs of a LABEL or ENV instruction (ENV's old `KEY value` form too). */
function pairs(args: string): Map<string, string> {
  const out = new Map<string, string>();
  const re = /([^\s=]+)=(?:"((?:[^"\\]|\\.)*)"|(\S*))/g;
  let matched = false;
  for (const m of args.matchAll(re)) {
    matched = true;
    out.set(m[1]!, m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!);
  }
  if (!matched) {
    const m = /^(\S+)\s+(.*)$/.exec(args.trim());
    if (m !== null) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** .dockerignore patterns (comments and blank lines dropped, cleaned as Docker cleans them). */
function parseIgnore(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => (l.startsWith('!') ? l : normalise(l.replace(/^\/+/, ''))));
}

/** Go filepath.Match with Docker's `**`, as a regex over a context-relative path. */
function ignoreRegex(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      i++;
      if (pattern[i + 1] === '/') {
        i++;
        re += '(?:.*/)?';
      } else re += '.*';
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const close = pattern.indexOf(']', i);
      re += pattern.slice(i, close + 1).replace(/^\[!/, '[^');
      i = close;
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Whether the context leaves out a path: a pattern matches it or one of its parent directories. */
function ignored(patterns: string[], rel: string): boolean {
  const parts = rel.split('/');
  return patterns.some((p) => {
    const re = ignoreRegex(p);
    return parts.some((_, i) => re.test(parts.slice(0, i + 1).join('/')));
  });
}

// ------------------------------------------------------------ the inputs

interface PackageJson {
  description: string;
  license: string;
  name: string;
  bin: Record<string, string>;
  engines: { node: string };
  scripts: Record<string, string>;
  peerDependencies: Record<string, string>;
}
interface TsConfig {
  extends?: string;
  include?: string[];
  files?: string[];
  compilerOptions?: { rootDir?: string; outDir?: string };
}
interface LockPackage {
  dev?: boolean;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as PackageJson;
const lock = (JSON.parse(fs.readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockPackage> }).packages;
const dockerfileText = fs.readFileSync(path.join(root, 'Dockerfile'), 'utf8');
const stages = parseStages(parseInstructions(dockerfileText));
const ignorePatterns = parseIgnore(fs.readFileSync(path.join(root, '.dockerignore'), 'utf8'));

const runtime = stages[stages.length - 1]!;
const build = stages[0]!;
const buildName = build.name ?? '0';
const ofKeyword = (stage: Stage, keyword: string): Instruction[] => stage.instructions.filter((i) => i.keyword === keyword);
const runs = (stage: Stage): Instruction[] => ofKeyword(stage, 'RUN');
/** Index (in the stage's instructions) of the first RUN whose command matches. */
const runIndex = (stage: Stage, command: RegExp): number => stage.instructions.findIndex((i) => i.keyword === 'RUN' && command.test(i.args));
/** COPYs from the build context (no --from) of the build stage. */
const contextCopies = copies(build).filter((c) => c.from === undefined);
const contextSources = contextCopies.flatMap((c) => c.sources);
/** Whether a context path reaches the build stage through one of its COPYs (itself or a parent directory). */
const copiedFromContext = (rel: string, copyList: Copy[] = contextCopies): boolean =>
  copyList.some((c) => c.sources.some((s) => s === '.' || rel === s || rel.startsWith(`${s}/`)));

/** A tsconfig with its `extends` chain: every file read, and the effective include/rootDir/outDir. */
function readTsConfig(file: string): { files: string[]; include: string[]; rootDir: string; outDir: string } {
  // The nearest config that sets include (or files, or an option) wins; all sit at the repo root here.
  const chain: string[] = [];
  let include: string[] | undefined;
  let files: string[] | undefined;
  let rootDir: string | undefined;
  let outDir: string | undefined;
  for (let f: string | undefined = file; f !== undefined; ) {
    chain.push(f);
    const config = JSON.parse(fs.readFileSync(path.join(root, f), 'utf8')) as TsConfig;
    include ??= config.include;
    files ??= config.files;
    rootDir ??= config.compilerOptions?.rootDir;
    outDir ??= config.compilerOptions?.outDir;
    f = config.extends === undefined ? undefined : normalise(posix.join(posix.dirname(f), config.extends));
  }
  return { files: chain, include: [...(include ?? []), ...(files ?? [])].map(normalise), rootDir: normalise(rootDir ?? '.'), outDir: normalise(outDir ?? '.') };
}

/** The script text `npm ci` ends up running for the build: `prepare`, with each `npm run x` it calls expanded. */
function scriptText(name: string): string {
  const text = pkg.scripts[name] ?? '';
  return text.replace(/npm run (\S+)/g, (_, inner: string) => scriptText(inner));
}
const buildScript = scriptText('prepare');
const tsProjects = [...buildScript.matchAll(/\btsc\b[^&;]*?-p\s+(\S+)/g)].map((m) => normalise(m[1]!));
/** fs.cpSync(from, to) pairs in the build script (the heatmap page's assets). */
const assetCopies = [...buildScript.matchAll(/cpSync\(\s*'([^']+)'\s*,\s*'([^']+)'/g)].map((m) => ({ from: normalise(m[1]!), to: normalise(m[2]!) }));
const buildConfig = readTsConfig(tsProjects[0] ?? 'tsconfig.build.json');

/** Where Node would find `name` from the package at `from`, in the lockfile's tree. */
function resolveLock(from: string, name: string): string | undefined {
  for (let dir = from; ; ) {
    const candidate = `${dir === '' ? '' : `${dir}/`}node_modules/${name}`;
    if (lock[candidate] !== undefined) return candidate;
    if (dir === '') return undefined;
    const at = dir.lastIndexOf('/node_modules/');
    dir = at < 0 ? '' : dir.slice(0, at);
  }
}
/** A package and everything it loads, as lockfile locations. */
function closure(location: string): Set<string> {
  const out = new Set<string>();
  const visit = (loc: string): void => {
    if (out.has(loc)) return;
    out.add(loc);
    const p = lock[loc]!;
    for (const name of Object.keys({ ...p.dependencies, ...p.optionalDependencies, ...p.peerDependencies })) {
      const found = resolveLock(loc, name);
      if (found !== undefined) visit(found);
    }
  };
  visit(location);
  return out;
}

// ------------------------------------------------------------------ tests

describe('Dockerfile: a two-stage build whose runtime stage holds everything `zonal serve` reads', () => {
  it('has two stages, and the runtime one (the last) runs the Node major package.json supports, the same the native module was built with', () => {
    expect(stages.length).toBe(2);
    expect(build.name).toBeDefined();
    const floor = /^>=\s*(\d+)(?:\.\d+){0,2}$/.exec(pkg.engines.node);
    expect(floor, `engines.node "${pkg.engines.node}" is not of the >=N form this test reads`).not.toBeNull();
    const major = (image: string): number => Number(/^node:(\d+)(?:[.-]|$)/.exec(image)?.[1] ?? NaN);
    expect(major(runtime.image)).toBeGreaterThanOrEqual(Number(floor![1]));
    // better-sqlite3's .node file is compiled in the build stage: another Node ABI at run time would refuse to load it.
    expect(major(runtime.image)).toBe(major(build.image));
    // The build stage has the compiler better-sqlite3 may need; the runtime stage does without.
    expect(stages.map((s) => s.image)).toEqual(['node:20-bookworm', 'node:20-bookworm-slim']);
  });

  it('copies package.json, package-lock.json and everything the build script reads before `npm ci` (whose prepare builds)', () => {
    const ci = runIndex(build, /(^|\s)npm ci(\s|$)/);
    expect(ci, 'the build stage runs npm ci').toBeGreaterThanOrEqual(0);
    const before = copies(build).filter((c) => c.from === undefined && build.instructions.findIndex((i) => i.line === c.line) < ci);
    // What npm ci and its prepare (npm run build) read: the manifest, the lockfile, each tsconfig of `tsc -p` with its
    // extends chain and its include (the sources, rootDir among them), and the source of each asset copy.
    expect(tsProjects.length, `the build script "${buildScript}" runs tsc -p`).toBeGreaterThan(0);
    const needed = new Set<string>(['package.json', 'package-lock.json']);
    for (const project of tsProjects) {
      const config = readTsConfig(project);
      for (const f of [...config.files, ...config.include, config.rootDir]) needed.add(f);
    }
    for (const a of assetCopies) needed.add(a.from);
    expect(needed).toContain('src');
    const missing = [...needed].filter((f) => !copiedFromContext(f, before));
    expect(missing, 'read by npm ci / npm run build but not copied before npm ci').toEqual([]);
    for (const f of needed) expect(fs.existsSync(path.join(root, f)), `${f} exists in the repo`).toBe(true);
  });

  it('prunes dev dependencies after the build, and the runtime stage installs nothing', () => {
    const ci = runIndex(build, /(^|\s)npm ci(\s|$)/);
    const prune = runIndex(build, /npm prune --omit=dev/);
    expect(prune).toBeGreaterThan(ci);
    for (const ins of runs(runtime)) expect(ins.args).not.toMatch(/\b(npm|yarn|pnpm)\s+(ci|install|i|add)\b/);
    const fromBuild = copies(runtime).filter((c) => c.from === buildName);
    expect(fromBuild.some((c) => c.sources.includes(posix.join(workdirOf(build), 'node_modules')))).toBe(true);
  });

  it("keeps the drivers serve loads (package.json's peer dependencies: better-sqlite3 for the default store, pg, ...) through the prune", () => {
    // package.json lists them as dev dependencies only, so the lockfile marks them dev and prune removes them;
    // the Dockerfile sets them aside (npm query, tar) and puts them back. Run its own listing here and check that,
    // in the lockfile's tree, each peer and all it loads is kept by prune or put back.
    const step = runs(build).find((i) => /npm prune --omit=dev/.test(i.args))!;
    const commands = step.args.split(/\s+&&\s+/);
    const pruneAt = commands.findIndex((c) => /npm prune --omit=dev/.test(c));
    const saveAt = commands.findIndex((c) => /^tar\s+-c\S*\s+(\S+)\s+-T\s+(\S+)$/.test(c));
    const restoreAt = commands.findIndex((c, i) => i > pruneAt && /^tar\s+-x\S*\s+(\S+)$/.test(c));
    expect(saveAt, 'a tar -cf <archive> -T <list> before the prune').toBeGreaterThanOrEqual(0);
    expect(saveAt).toBeLessThan(pruneAt);
    expect(restoreAt, 'a tar -xf <archive> after the prune').toBeGreaterThan(pruneAt);
    const [, archive, listFile] = /^tar\s+-c\S*\s+(\S+)\s+-T\s+(\S+)$/.exec(commands[saveAt]!)!;
    expect(/^tar\s+-x\S*\s+(\S+)$/.exec(commands[restoreAt]!)![1]).toBe(archive);
    const listing = commands.slice(0, saveAt).find((c) => c.endsWith(`> ${listFile}`));
    expect(listing, `a command before the tar writes ${listFile}`).toBeDefined();

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zonal-image-peers-'));
    try {
      const out = path.join(dir, 'peers.txt');
      const r = spawnSync('sh', ['-c', listing!.slice(0, -listFile!.length) + JSON.stringify(out)], { cwd: root, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const restored = new Set(fs.readFileSync(out, 'utf8').split('\n').filter(Boolean));
      const keptByPrune = Object.keys(lock).filter((loc) => loc !== '' && lock[loc]!.dev !== true);
      const present = new Set([...keptByPrune, ...restored]);
      const peers = Object.keys(pkg.peerDependencies);
      expect(peers).toContain('better-sqlite3');
      for (const peer of peers) {
        const at = resolveLock('', peer);
        expect(at, `${peer} is in the lockfile`).toBeDefined();
        // Prune alone would drop it: that is why the restore exists.
        expect(lock[at!]!.dev).toBe(true);
        const lost = [...closure(at!)].filter((loc) => !present.has(loc));
        expect(lost, `${peer}: what it loads, gone after the prune`).toEqual([]);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("copies dist, proto, node_modules and package.json into the runtime stage, and ENTRYPOINT runs package.json's bin from there", () => {
    const fromBuild = copies(runtime).filter((c) => c.from === buildName);
    const buildDir = workdirOf(build);
    /** Where a build-stage file or directory lands in the runtime stage. */
    const landed = (buildPath: string, isDir = true): string | undefined => {
      for (const c of fromBuild) {
        const raw = runtime.instructions.find((i) => i.line === c.line)!.args.trim();
        for (const s of c.sources) if (s === buildPath) return landing(c, isDir, raw.endsWith('/'), s);
      }
      return undefined;
    };
    const pkgJson = landed(posix.join(buildDir, 'package.json'), false);
    expect(pkgJson).toBeDefined();
    const appRoot = posix.dirname(pkgJson!);
    expect(appRoot).toBe(workdirOf(runtime));
    expect(landed(posix.join(buildDir, 'package-lock.json'), false)).toBe(posix.join(appRoot, 'package-lock.json'));
    // The package's own layout is kept: dist (the build's outDir), proto and node_modules beside package.json.
    expect(landed(posix.join(buildDir, buildConfig.outDir))).toBe(posix.join(appRoot, buildConfig.outDir));
    expect(landed(posix.join(buildDir, 'node_modules'))).toBe(posix.join(appRoot, 'node_modules'));
    const protoDir = normalise(path.relative(root, PROTO_ROOT));
    expect(protoDir).toBe('proto');
    expect(landed(posix.join(buildDir, protoDir))).toBe(posix.join(appRoot, protoDir));
    expect(copiedFromContext(protoDir), 'proto/ reaches the build stage from the context').toBe(true);

    const entry = execForm(ofKeyword(runtime, 'ENTRYPOINT').at(-1)?.args ?? '');
    expect(entry, 'ENTRYPOINT in exec form').toBeDefined();
    expect(entry![0]).toBe('node');
    expect(entry![1]).toBe(`/app/${pkg.bin['zonal']}`);
    expect(entry![1]).toBe(posix.join(appRoot, pkg.bin['zonal']!));
    // The bin is compiled from src (rootDir) into dist (outDir).
    const source = posix.join(buildConfig.rootDir, posix.relative(buildConfig.outDir, pkg.bin['zonal']!)).replace(/\.js$/, '.ts');
    expect(fs.existsSync(path.join(root, source)), `${source} compiles to the bin`).toBe(true);
    expect(execForm(ofKeyword(runtime, 'CMD').at(-1)?.args ?? '')).toEqual(['serve']);
    expect(pairs(ofKeyword(runtime, 'ENV').map((e) => e.args).join(' ')).get('NODE_ENV')).toBe('production');
  });

  it('ships every file the code finds next to itself at run time (__dirname): the .proto files and the heatmap assets', () => {
    // Each source file that resolves a path from __dirname, and what in the image it reaches. src/demo is not run by
    // the image (it reads deploy/, which is not shipped). A new such file fails here until its files are checked in the image.
    const users = walk(path.join(root, 'src'))
      .filter((f) => f.endsWith('.ts') && !f.startsWith('demo/') && /__dirname|__filename/.test(fs.readFileSync(path.join(root, 'src', f), 'utf8')))
      .sort();
    expect(users).toEqual(['admin/heatmap-page.ts', 'protocol/service.ts']);
    // protocol/service.ts walks up to proto/: checked above. admin/heatmap-page.ts reads heatmap-page/ next to
    // dist/admin/heatmap-page.js, which the build script copies from src into dist, and dist is copied.
    const heatmap = assetCopies.find((a) => a.to === posix.join(buildConfig.outDir, 'admin/heatmap-page'));
    expect(heatmap, 'the build script copies the heatmap page into dist').toBeDefined();
    expect(copiedFromContext(heatmap!.from)).toBe(true);
    expect(fs.readdirSync(path.join(root, heatmap!.from)).sort()).toEqual(['app.js', 'index.html', 'style.css']);
  });

  it('labels the image from package.json', () => {
    const labels = pairs(ofKeyword(runtime, 'LABEL').map((l) => l.args).join(' '));
    expect(labels.get('org.opencontainers.image.title')).toBe(pkg.name);
    expect(labels.get('org.opencontainers.image.description')).toBe(pkg.description);
    expect(labels.get('org.opencontainers.image.licenses')).toBe(pkg.license);
  });

  it('runs as a numeric non-root user (so runAsNonRoot can verify it), node as PID 1 (exec form, so it gets SIGTERM)', () => {
    // The last USER of the last stage is the one the container runs as.
    const user = ofKeyword(runtime, 'USER').at(-1);
    expect(user).toBeDefined();
    const m = /^(\d+)(?::(\d+))?$/.exec(user!.args.trim());
    expect(m, `USER ${user!.args} is numeric`).not.toBeNull();
    expect(Number(m![1])).not.toBe(0);
    expect(execForm(ofKeyword(runtime, 'ENTRYPOINT').at(-1)?.args ?? '')).toBeDefined();
  });

  it("gives a bare `docker run` a data dir its user can write: serve's --data-dir env var names a directory created, owned by the USER and declared a VOLUME", () => {
    const dataDir = SERVE_FLAGS.find((f) => f.name === 'data-dir');
    expect(dataDir?.env).toBeDefined();
    const env = new Map(ofKeyword(runtime, 'ENV').flatMap((e) => [...pairs(e.args)]));
    const dir = env.get(dataDir!.env!);
    expect(dir, `ENV ${dataDir!.env} (else serve's default ${String(dataDir!.default)} is under root-owned ${workdirOf(runtime)})`).toBeDefined();
    expect(posix.isAbsolute(dir!)).toBe(true);
    const user = ofKeyword(runtime, 'USER').at(-1)!.args.trim();
    const owner = user.includes(':') ? user : `${user}:${user}`;
    const userAt = runtime.instructions.indexOf(ofKeyword(runtime, 'USER').at(-1)!);
    // Made as root (before USER), then handed over: the run-time user cannot create it under / itself.
    const made = runtime.instructions.slice(0, userAt).filter((i) => i.keyword === 'RUN').map((i) => i.args.split(/\s*&&\s*/));
    expect(made.some((cmds) => cmds.some((c) => new RegExp(`^mkdir -p ${dir}$`).test(c)) && cmds.some((c) => c === `chown ${owner} ${dir}`)), `RUN mkdir -p ${dir} && chown ${owner} ${dir}`).toBe(true);
    const volumes = ofKeyword(runtime, 'VOLUME').flatMap((v) => execForm(v.args) ?? v.args.split(/\s+/));
    expect(volumes).toContain(dir);
  });

  it('exposes exactly the ports of the CLI defaults: serve --grpc-address, --admin-address, --xds-address; xds --admin-address', () => {
    const portOf = (flags: FlagSpec[], name: string): number => {
      const value = flags.find((f) => f.name === name)?.default;
      expect(typeof value, `${name} has a string default`).toBe('string');
      return Number(/:(\d+)$/.exec(value as string)![1]);
    };
    const cliPorts = new Set([
      portOf(SERVE_FLAGS, 'grpc-address'),
      portOf(SERVE_FLAGS, 'admin-address'),
      portOf(SERVE_FLAGS, 'xds-address'),
      portOf(XDS_FLAGS, 'address'),
      portOf(XDS_FLAGS, 'admin-address'),
    ]);
    const exposed = ofKeyword(runtime, 'EXPOSE').flatMap((e) => e.args.split(/\s+/)).map((p) => Number(p.replace(/\/tcp$/, '')));
    expect(exposed.length).toBe(new Set(exposed).size);
    expect([...exposed].sort((a, b) => a - b)).toEqual([...cliPorts].sort((a, b) => a - b));
    expect([...cliPorts].sort((a, b) => a - b)).toEqual([9464, 18000, 19464, 50051]);
  });
});

/** Context-relative paths of the files under dir, not descending into what `skip` says to leave out. */
function walk(dir: string, skip: (rel: string) => boolean = () => false, rel = ''): string[] {
  const out: string[] = [];
  for (const entry of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const child = rel === '' ? entry.name : `${rel}/${entry.name}`;
    if (skip(child)) continue;
    if (entry.isDirectory()) out.push(...walk(dir, skip, child));
    else out.push(child);
  }
  return out;
}

describe('.dockerignore: a small context without local state, that still holds what the Dockerfile copies', () => {
  it('uses no ! exceptions (this test does not evaluate them)', () => {
    expect(ignorePatterns.filter((p) => p.startsWith('!'))).toEqual([]);
  });

  it('leaves out node_modules, dist, .git and the local data dir', () => {
    for (const p of ['node_modules', 'dist', '.git', 'data', 'node_modules/pg/package.json', 'bench/results/x.json', 'run.log']) expect(ignored(ignorePatterns, p), p).toBe(true);
  });

  it('leaves out nothing the Dockerfile copies, nor any tracked file under what it copies', () => {
    for (const s of contextSources) expect(ignored(ignorePatterns, s), `COPY source ${s}`).toBe(false);
    const tracked = spawnSync('git', ['ls-files', '-z', '--', ...contextSources], { cwd: root, encoding: 'utf8' });
    expect(tracked.status, tracked.stderr).toBe(0);
    const files = tracked.stdout.split('\0').filter((f) => f !== '' && fs.existsSync(path.join(root, f)));
    expect(files.length).toBeGreaterThan(0);
    expect(files.filter((f) => ignored(ignorePatterns, f))).toEqual([]);
  });
});

describe('the build stage compiles from the files it receives', () => {
  let tmp: string | undefined;
  afterEach(() => {
    if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('the context minus .dockerignore, restricted to the COPY sources, type-checks with tsc -p tsconfig.build.json', () => {
    const dir = (tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'zonal-image-context-')));
    const received = walk(root, (rel) => ignored(ignorePatterns, rel)).filter((rel) => copiedFromContext(rel));
    for (const rel of received) {
      fs.mkdirSync(path.join(dir, path.dirname(rel)), { recursive: true });
      fs.copyFileSync(path.join(root, rel), path.join(dir, rel));
    }
    // npm ci would install these; the repo's own install stands in for it.
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
    for (const a of assetCopies) expect(fs.existsSync(path.join(dir, a.from)), `${a.from} (copied by the build script)`).toBe(true);
    const tsc = path.join(dir, 'node_modules/typescript/bin/tsc');
    expect(fs.existsSync(tsc), 'typescript is installed (npm ci)').toBe(true);
    for (const project of tsProjects) {
      const r = spawnSync(process.execPath, [tsc, '-p', project, '--noEmit'], { cwd: dir, encoding: 'utf8' });
      expect(r.status, `tsc -p ${project} in the build context:\n${r.stdout}${r.stderr}`).toBe(0);
    }
  }, 120_000);
});
