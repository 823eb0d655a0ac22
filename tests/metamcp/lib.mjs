// What every scenario of the MetaMCP suite needs: real SDK clients, a sampler of the
// namespace's processes read from the host's /proc, mcpinit's JSON log lines, and the
// servers' error status in MetaMCP's database. Nothing here decides pass or fail.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

const env = process.env;
const sdk = createRequire(join(env.CLIENT_MODULES, "noop.js"));
const { Client } = sdk("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = sdk("@modelcontextprotocol/sdk/client/streamableHttp.js");

export const BASE = env.METAMCP_URL ?? "http://127.0.0.1:12009";
export const ENDPOINT = `${BASE}/metamcp/e2e/mcp`;
const CALL_TIMEOUT_MS = 20_000;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
export const now = () => Date.now();

function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Calls made and failed, with the first few failures kept to say why. */
export class Tally {
  constructor() {
    this.calls = 0;
    this.failed = 0;
    this.reasons = [];
  }
  ok() {
    this.calls += 1;
  }
  fail(label, why) {
    this.calls += 1;
    this.failed += 1;
    if (this.reasons.length < 6) this.reasons.push(`${label}: ${why}`);
  }
}

/** One MCP client session on the endpoint. Never closed: MetaMCP must keep it. */
export class Session {
  constructor(label, tally) {
    this.label = label;
    this.tally = tally;
    this.tools = [];
  }

  async open() {
    this.client = new Client({ name: `e2e-${this.label}`, version: "1.0.0" });
    this.transport = new StreamableHTTPClientTransport(new URL(ENDPOINT));
    try {
      await bounded(this.client.connect(this.transport), CALL_TIMEOUT_MS, "connect");
      await this.listTools();
      return true;
    } catch (e) {
      this.tally.fail(this.label, `connect: ${e.message}`);
      return false;
    }
  }

  /** tools/list; a server's tools missing from it is a failed call. */
  async listTools(expectPrefixes = []) {
    try {
      const { tools } = await bounded(this.client.listTools(), CALL_TIMEOUT_MS, "tools/list");
      this.tools = tools.map((t) => t.name);
      const missing = expectPrefixes.filter((p) => !this.tools.some((t) => t.startsWith(`${p}__`)));
      if (missing.length) {
        this.tally.fail(this.label, `tools/list has no tools of ${missing.join(", ")} (${this.tools.length} tools)`);
        return false;
      }
      this.tally.ok();
      return true;
    } catch (e) {
      this.tally.fail(this.label, `tools/list: ${e.message}`);
      return false;
    }
  }

  async call(tool, args) {
    try {
      const result = await bounded(
        this.client.callTool({ name: tool, arguments: args }),
        CALL_TIMEOUT_MS,
        tool,
      );
      if (result.isError) {
        const text = (result.content ?? []).map((c) => c.text ?? "").join(" ").slice(0, 160);
        this.tally.fail(this.label, `${tool}: error result: ${text}`);
        return false;
      }
      this.tally.ok();
      return true;
    } catch (e) {
      this.tally.fail(this.label, `${tool}: ${e.message}`);
      return false;
    }
  }

  /** Asks MetaMCP to end the session (HTTP DELETE): MetaMCP closes its instances. */
  async terminate() {
    await bounded(this.transport.terminateSession(), CALL_TIMEOUT_MS, "DELETE session");
  }
}

/** A call of each server's tool the suite uses. */
export const TOOL_OF = {
  everything: ["everything__echo", { message: "hello" }],
  everything2: ["everything2__echo", { message: "hello" }],
  twin: ["twin__echo", { message: "hello" }],
  stubborn: ["stubborn__hold", { message: "hello" }],
  time: ["time__get_current_time", { timezone: "UTC" }],
};

export async function liveSessionsCount() {
  try {
    const res = await bounded(fetch(`${BASE}/metamcp/health/sessions`), 5000, "health/sessions");
    const body = await res.json();
    return body?.streamableHttpSessions?.count ?? null;
  } catch {
    return null;
  }
}

// ------------------------------------------------------------------ processes

function readText(path) {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** A launcher instance's top process: what MetaMCP spawned for a session or as spare. */
export function isInstanceTop(cmdline) {
  const [first, ...rest] = cmdline.split(" ");
  const program = first.slice(first.lastIndexOf("/") + 1);
  const line = [program, ...rest].join(" ");
  return /^(npm exec |uv tool uvx |uvx )/.test(line);
}

/**
 * Samples the processes below mcpinit (the namespace's PID 1, seen from the host):
 * the live count and its peak, and every launcher instance with its pids on both
 * sides of the namespace and when it was first and last seen.
 */
export class Sampler {
  /**
   * `pidsCurrent`: a cgroup's pids.current to sample as well (what the kernel's pids
   * limit counts: tasks, mcpinit's own included), or nothing.
   */
  constructor(initPid, pidsCurrent = null) {
    this.initPid = initPid;
    this.pidsCurrent = pidsCurrent;
    this.peak = 0;
    this.last = 0;
    this.peakTasks = 0; // threads of the processes below mcpinit, at one sample
    this.peakCgroup = null; // the cgroup's pids.current
    this.refused = null; // forks and thread creations the kernel refused at pids.max (pids.events "max")
    this.tasksPerInstance = []; // tasks of one instance (top and its descendants), as sampled
    this.known = new Map(); // "hostpid:start" -> {hostPid, nsPid, cmdline, ppid, first, last}
    this.instances = new Map(); // same key, only instance tops
  }

  sample() {
    const procs = new Map();
    for (const name of readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      const stat = readText(`/proc/${name}/stat`);
      if (!stat) continue;
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      procs.set(Number(name), { state: fields[0], ppid: Number(fields[1]), threads: Number(fields[17]), start: fields[19] });
    }
    const children = new Map();
    for (const [pid, p] of procs) {
      if (!children.has(p.ppid)) children.set(p.ppid, []);
      children.get(p.ppid).push(pid);
    }
    const t = now();
    let live = 0;
    let tasks = 0;
    const queue = [...(children.get(this.initPid) ?? [])];
    while (queue.length) {
      const pid = queue.pop();
      const p = procs.get(pid);
      queue.push(...(children.get(pid) ?? []));
      if (p.state === "Z") continue;
      live += 1;
      tasks += p.threads || 1;
      const id = `${pid}:${p.start}`;
      let rec = this.known.get(id);
      if (!rec) {
        const status = readText(`/proc/${pid}/status`) ?? "";
        const nspid = (status.match(/^NSpid:\s+(.*)$/m)?.[1] ?? "").trim().split(/\s+/);
        rec = { hostPid: pid, nsPid: Number(nspid[nspid.length - 1]), start: Number(p.start), first: t, cmdline: "" };
        this.known.set(id, rec);
      }
      // npm sets its title some 100 ms after start: read the command line until it has
      // (for a while; other processes keep theirs).
      if (!isInstanceTop(rec.cmdline) && t - rec.first < 5000) {
        rec.cmdline = (readText(`/proc/${pid}/cmdline`) ?? "").replace(/\0+/g, " ").trim();
        if (isInstanceTop(rec.cmdline)) this.instances.set(id, rec);
      }
      rec.ppid = p.ppid;
      rec.last = t;
      this.watchInput(rec, t);
      if (this.instances.has(id) && t - rec.first > 15_000) rec.tasks = subtreeTasks(pid, procs, children);
    }
    this.last = live;
    this.peak = Math.max(this.peak, live);
    this.peakTasks = Math.max(this.peakTasks, tasks);
    if (this.pidsCurrent) {
      const n = Number(readText(this.pidsCurrent));
      if (Number.isFinite(n) && n > 0) this.peakCgroup = Math.max(this.peakCgroup ?? 0, n);
      const events = readText(this.pidsCurrent.replace(/pids\.current$/, "pids.events"));
      const max = events?.match(/^max\s+(\d+)/m);
      if (max) this.refused = Number(max[1]);
    }
    return live;
  }

  /**
   * When a server last read input, as seen from outside: its /proc/PID/io rchar grew by
   * more than 64 bytes between two samples, more than 8 bytes a read call (a request is a
   * few hundred bytes; Node's own eventfd wake-ups are 8-byte reads), after its first
   * 20 s (start-up, and MetaMCP's initialize of every new instance). Launchers (npm
   * exec, sh -c, uv) are left out: their counters move with their own work, not traffic.
   * Ground truth for "in use", independent of mcpinit's own reading.
   */
  watchInput(rec, t) {
    if (!rec.cmdline || isInstanceTop(rec.cmdline) || /^(\S*\/)?sh -c /.test(rec.cmdline)) return;
    const io = readText(`/proc/${rec.hostPid}/io`);
    const rchar = Number(io?.match(/^rchar:\s+(\d+)/m)?.[1] ?? NaN);
    const syscr = Number(io?.match(/^syscr:\s+(\d+)/m)?.[1] ?? NaN);
    if (Number.isNaN(rchar) || Number.isNaN(syscr)) return;
    if (rec.rchar !== undefined) {
      const bytes = rchar - rec.rchar;
      const calls = Math.max(1, syscr - rec.syscr);
      // A server's first 20 s are its start-up and MetaMCP's initialize, not use.
      if (bytes > 64 && bytes / calls > 8 && t - rec.first > 20_000) rec.lastInput = t;
    }
    rec.rchar = rchar;
    rec.syscr = syscr;
  }

  /** The last input of any of these namespace pids before `when` (ms), or null. */
  lastInputOf(nsPids, when) {
    let last = null;
    for (const r of this.known.values()) {
      if (!nsPids.includes(r.nsPid) || r.first > when || r.last < when - 1500) continue;
      if (r.lastInput !== undefined && r.lastInput <= when) last = Math.max(last ?? 0, r.lastInput);
    }
    return last;
  }

  /** Tasks (threads) per started instance, as last sampled after its first 15 s: [median, max]. */
  instanceTasks() {
    const all = [...this.instances.values()].map((r) => r.tasks).filter((n) => n > 0).sort((a, b) => a - b);
    return all.length ? [all[Math.floor(all.length / 2)], all[all.length - 1]] : null;
  }

  start(everyMs = 500) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  stop() {
    clearInterval(this.timer);
  }

  /** Instance tops alive at the last sample, by command line. */
  aliveInstances() {
    const alive = [...this.instances.values()].filter((r) => r.last >= this.lastSampleTime());
    const byKey = new Map();
    for (const r of alive) {
      if (!byKey.has(r.cmdline)) byKey.set(r.cmdline, []);
      byKey.get(r.cmdline).push(r);
    }
    return byKey;
  }

  lastSampleTime() {
    let t = 0;
    for (const r of this.known.values()) t = Math.max(t, r.last);
    return t;
  }

  /** Processes matching `re` alive at the last sample. */
  alive(re) {
    const t = this.lastSampleTime();
    return [...this.known.values()].filter((r) => r.last >= t && re.test(r.cmdline || this.cmdlineOf(r)));
  }

  cmdlineOf(rec) {
    if (!rec.cmdline) rec.cmdline = (readText(`/proc/${rec.hostPid}/cmdline`) ?? "").replace(/\0+/g, " ").trim();
    return rec.cmdline;
  }

  /**
   * Was the instance whose top had namespace pid `nsPid` the newest of its command line
   * at `when`? The newest instance of a server is MetaMCP's idle spare.
   */
  wasNewest(nsPid, when) {
    const rec = [...this.instances.values()].find((r) => r.nsPid === nsPid && r.first <= when && r.last >= when - 1500);
    if (!rec) return false;
    const rivals = [...this.instances.values()].filter(
      (r) => r.cmdline === rec.cmdline && r.first <= when && r.last >= when - 1500,
    );
    // Start times in clock ticks, the pid breaking a tie: the order mcpinit sees.
    const older = (a, b) => a.start < b.start || (a.start === b.start && a.nsPid < b.nsPid);
    return rivals.every((r) => r === rec || older(r, rec));
  }
}

/** Tasks of a process and every descendant, from one sample's table. */
function subtreeTasks(pid, procs, children) {
  let n = 0;
  const queue = [pid];
  while (queue.length) {
    const p = queue.pop();
    n += procs.get(p)?.threads || 0;
    queue.push(...(children.get(p) ?? []));
  }
  return n;
}

/** mcpinit's own peak of live descendants, from its state file (`status --json`). */
export function statePeak(path) {
  let doc;
  try {
    doc = JSON.parse(readText(path) ?? "null");
  } catch {
    return null;
  }
  const find = (v) => {
    if (!v || typeof v !== "object") return null;
    if (typeof v.peak_procs === "number") return v.peak_procs;
    for (const child of Object.values(v)) {
      const found = find(child);
      if (found !== null) return found;
    }
    return null;
  };
  return find(doc);
}

// ------------------------------------------------------------------ mcpinit's log

/** mcpinit's JSON lines out of the namespace's mixed output. */
export function mcpinitEvents(logPath) {
  const events = [];
  for (const line of (readText(logPath) ?? "").split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const e = JSON.parse(line);
      if (e.event && e.msg && e.time) events.push({ ...e, at: Date.parse(e.time) });
    } catch {
      // a backend line that happens to start with a brace
    }
  }
  return events;
}

const pidsOf = (e) => String(e.pids ?? "").split(",").filter(Boolean).map(Number);

/**
 * Every unit mcpinit set out to end, with how it ended: EOF when its input was closed
 * and nothing more was needed, TERM when SIGTERM was sent (first, or after the input),
 * KILL when it escalated. From the unit's `unit_gone` line (`ended`) when there is one,
 * else from its other lines (`eof_timeout`, `escalate`; no close-input step: SIGTERM).
 * Steps are matched to the unit by pgid, top pid or pids.
 */
export function terminations(events) {
  const units = [];
  for (const e of events) {
    if (e.event !== "terminate" || e.dry_run === true) continue;
    units.push({ reason: e.reason, key: e.key ?? "", top: e.top, pgid: e.pgid, pids: pidsOf(e), at: e.at, steps: [e] });
  }
  for (const e of events) {
    if (e.event === "terminate") continue;
    const pids = pidsOf(e);
    const unit = units
      .filter((u) => u.at <= e.at)
      .reverse()
      .find(
        (u) =>
          // A subtree's pgid is the main child's group, shared by every subtree unit:
          // only a group unit's pgid names the unit.
          (e.pgid && u.pgid && e.pgid === u.pgid && !/^subtree/.test(e.unit ?? "")) ||
          (e.top && e.top === u.top) ||
          pids.some((p) => u.pids.includes(p)) ||
          (e.unit && u.pgid && e.unit === `process group ${u.pgid}`) ||
          (e.unit && e.unit === `subtree of ${u.top}`),
      );
    if (unit) unit.steps.push(e);
  }
  for (const u of units) u.how = howEnded(u.steps);
  return units;
}

function howEnded(steps) {
  // The exit step made the instance's top (what the gateway tracks) exit 0: that is the
  // end the gateway saw, whatever its orphaned remnants needed afterwards.
  if (steps.some((s) => s.event === "exit_step")) return "EXIT";
  // mcpinit says it itself when it knows: unit_gone ended=eof|exit|term|kill.
  const gone = steps.find((s) => s.event === "unit_gone" && s.ended);
  if (gone) return String(gone.ended).toUpperCase();
  const names = steps.map((s) => `${s.event} ${s.msg} ${s.step ?? ""} ${s.via ?? ""} ${s.signal ?? ""}`);
  if (steps.some((s) => s.event === "escalate" || /SIGKILL/.test(s.msg))) return "KILL";
  const inputClosed = names.some((n) => /\beof\b|input/i.test(n));
  const termSent = steps.slice(1).some((s) => /SIGTERM|\bterm\b/i.test(`${s.event} ${s.msg}`)) ||
    (!inputClosed && /SIGTERM|terminat/i.test(names[0]));
  if (inputClosed && !termSent) return "EOF";
  return "TERM";
}

export function countHow(units) {
  const out = { EOF: 0, EXIT: 0, TERM: 0, KILL: 0 };
  for (const u of units) out[u.how] = (out[u.how] ?? 0) + 1;
  return out;
}

/** MetaMCP's own word for an instance death it did not cause: a crash. */
export function metamcpCrashes(logPath) {
  return (readText(logPath) ?? "").split("\n").filter((l) => /Process crashed with code/.test(l));
}

// ------------------------------------------------------------------ the database

export function errorStatus() {
  const args = JSON.parse(env.PSQL_ARGS);
  try {
    const out = execFileSync("psql", [...args, "-XAtc", "SELECT name || '=' || error_status FROM mcp_servers ORDER BY name"], {
      encoding: "utf8",
      timeout: 10_000,
    });
    return Object.fromEntries(out.trim().split("\n").map((l) => l.split("=")));
  } catch (e) {
    return { database: `unreadable: ${e.message.split("\n")[0]}` };
  }
}
