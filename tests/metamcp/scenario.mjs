// One scenario of the MetaMCP suite against a running backend (run.sh starts it under
// mcpinit): drives real SDK clients, watches the processes and the log, then prints what
// it measured and one pass/fail line per assertion. Exit status 1 when one failed.
//
//   node scenario.mjs healthy|leak|stubborn|twins|stubdup|compose
//
// Environment (set by run.sh): CLIENT_MODULES, INIT_PID (mcpinit's host pid), NS_LOG
// (the namespace's or container's output), PSQL_ARGS, SERVERS (the seeded servers), and
// the scenario's own durations, E2E_* below. Optional: PIDS_CURRENT (a cgroup's
// pids.current to sample), E2E_LEAK_DRIVES_CAP=1 (the leak is larger than the cap: the
// cap may act, but every end must be clean), E2E_PIDS_LIMIT (the container's pids
// limit, for compose), E2E_CASE (a label for the `figures:` line).
import {
  Sampler,
  Session,
  Tally,
  TOOL_OF,
  countHow,
  errorStatus,
  liveSessionsCount,
  mcpinitEvents,
  metamcpCrashes,
  now,
  statePeak,
  sleep,
  terminations,
} from "./lib.mjs";

const env = process.env;
const scenario = process.argv[2];
const servers = (env.SERVERS ?? "everything").split(",");
const seconds = (name, dflt) => Number(env[name] ?? dflt) * 1000;
const sampler = new Sampler(Number(env.INIT_PID), env.PIDS_CURRENT || null);
const howText = (h) => `EOF ${h.EOF}, EXIT ${h.EXIT}, TERM ${h.TERM}, KILL ${h.KILL}`;
const checks = [];
let peak = 0;

function check(what, ok, detail = "") {
  checks.push({ what, ok, detail });
}

function measured(label, value) {
  console.log(`    ${label}: ${value}`);
}

/** MetaMCP starts one idle instance per server 3 s after it listens. */
async function spares() {
  const deadline = now() + 90_000;
  while (now() < deadline) {
    // One per server; servers may share a command line (twins).
    const alive = [...sampler.aliveInstances().values()].reduce((n, list) => n + list.length, 0);
    if (alive >= servers.length) return true;
    await sleep(500);
  }
  return false;
}

/**
 * A session that keeps using every server, one call every `everyMs`, until the time
 * `until` (ms) or, when it is a function, until it returns a time that has passed.
 */
function keepUsing(session, until, everyMs, offsetMs = 0) {
  const deadline = typeof until === "function" ? until : () => until;
  return (async () => {
    await sleep(offsetMs);
    let n = 0;
    while (now() < deadline()) {
      const server = servers[n % servers.length];
      await session.call(...TOOL_OF[server]);
      if (++n % 5 === 0) await session.listTools(servers);
      await sleep(everyMs);
    }
  })();
}

async function openUsed(label, tally) {
  const s = new Session(label, tally);
  if (await s.open()) await s.listTools(servers);
  return s;
}

function summarise(tallies) {
  const events = mcpinitEvents(env.NS_LOG);
  const units = terminations(events);
  const status = errorStatus();
  const crashes = metamcpCrashes(env.NS_LOG);
  for (const [label, t] of Object.entries(tallies)) {
    measured(`calls ${label}`, `${t.calls} made, ${t.failed} failed`);
    for (const r of t.reasons) measured("  failure", r);
  }
  for (const u of units) {
    const last = sampler.lastInputOf(u.pids, u.at);
    u.inputAgo = last === null ? null : u.at - last;
    measured(
      `  ended ${u.reason} unit ${u.top}`,
      `${u.how}; its last input ${u.inputAgo === null ? "not seen" : `${(u.inputAgo / 1000).toFixed(1)} s`} before${sampler.wasNewest(u.top, u.at) ? "; the newest of its key" : ""}`,
    );
  }
  const how = countHow(units);
  measured("instances ended by mcpinit", `${units.length} (${howText(how)})`);
  const reasons = {};
  for (const u of units) reasons[u.reason] = (reasons[u.reason] ?? 0) + 1;
  if (units.length) measured("  by reason", JSON.stringify(reasons));
  const own = statePeak(env.E2E_STATE_FILE);
  peak = Math.max(sampler.peak, own ?? 0);
  measured("peak processes below mcpinit", `${peak} (sampled every 0.5 s: ${sampler.peak}; mcpinit's state file: ${own ?? "unread"})`);
  measured("peak tasks (threads) below mcpinit", sampler.peakTasks);
  if (sampler.pidsCurrent) {
    measured("peak tasks in the cgroup (pids.current, mcpinit included)", sampler.peakCgroup ?? "unread");
    measured("forks/threads the kernel refused at pids.max (pids.events)", sampler.refused ?? "unread");
  }
  const perInstance = sampler.instanceTasks();
  if (perInstance) measured("tasks per server instance (launcher and all, after 15 s; median..max)", `${perInstance[0]}..${perInstance[1]}`);
  const route = closeRoute(events);
  measured("mcpinit's route to close an input", route);
  // Per unit, when mcpinit's lines name it (route= / via= on a step).
  const byRoute = {};
  for (const u of units) {
    const r = u.steps.map((e) => e.route ?? e.via).find((v) => typeof v === "string") ?? "unnamed";
    byRoute[r] = (byRoute[r] ?? 0) + 1;
  }
  if (units.length) measured("  ends by the route their steps name", JSON.stringify(byRoute));
  measured("crashes MetaMCP counted", crashes.length);
  for (const c of crashes.slice(0, 3)) measured("  crash", c.trim().slice(0, 200));
  measured("servers' error_status", Object.entries(status).map(([k, v]) => `${k}=${v}`).join(" "));
  return { events, units, status, crashes, how, route, perInstance };
}

/** What mcpinit said at start about closing inputs: its route, or why it has none. */
function closeRoute(events) {
  const start = events.find((e) => e.event === "start");
  const routes = events.find((e) => e.event === "routes");
  if (routes) return `${routes.close} (exit step ${routes.exit})`;
  const refused = events.find((e) => e.event === "eof_unavailable");
  if (refused) return `none (eof_unavailable cause=${refused.cause})`;
  return start ? "pidfd (no eof_unavailable line)" : "unknown (no start line)";
}

// ------------------------------------------------------------------ (a) healthy

async function healthy() {
  const tally = new Tally();
  const duration = seconds("E2E_HEALTHY_SECONDS", 60);
  const sessions = [];
  for (let i = 0; i < 3; i++) sessions.push(await openUsed(`session${i + 1}`, tally));
  const until = now() + duration;
  await Promise.all(sessions.map((s, i) => keepUsing(s, until, 2000, i * 600)));
  for (const s of sessions) await s.listTools(servers);
  return { tally };
}

// ------------------------------------------------------------------ (b) leak, (c) spare, (e) uvx

async function leak() {
  const live = new Tally();
  const leaked = new Tally();
  const fresh = new Tally();
  const leakFor = seconds("E2E_LEAK_SECONDS", 50);
  const leakEvery = seconds("E2E_LEAK_EVERY", 5);
  const tail = seconds("E2E_LEAK_TAIL", 30);
  const inUse = [await openUsed("live1", live), await openUsed("live2", live)];
  const until = now() + leakFor + tail;
  const users = inUse.map((s, i) => keepUsing(s, until, 2000, i * 1000));
  const abandoned = [];
  const leakUntil = now() + leakFor;
  // At least E2E_LEAK_MIN_SESSIONS, however slow the machine opens them (up to twice the time).
  const minSessions = Number(env.E2E_LEAK_MIN_SESSIONS ?? 0);
  while (now() < leakUntil || (abandoned.length < minSessions && now() < leakUntil + leakFor)) {
    // Each new session takes the idle spare: its tools prove the spare was alive.
    const s = new Session(`leaked${abandoned.length + 1}`, leaked);
    if (await s.open()) {
      await s.listTools(servers);
      for (const server of servers) await s.call(...TOOL_OF[server]);
    }
    abandoned.push(s); // never closed, never used again
    await sleep(leakEvery);
  }
  await Promise.all(users);
  const last = await openUsed("fresh", fresh);
  for (const server of servers) await last.call(...TOOL_OF[server]);
  const metamcpSessions = await liveSessionsCount();
  return { tally: live, leaked, fresh, abandoned: abandoned.length, metamcpSessions };
}

// ------------------------------------------------------------------ (d) stubborn

async function stubborn() {
  const live = new Tally();
  const closed = new Tally();
  const wait = seconds("E2E_STUBBORN_WAIT", 45);
  const user = await openUsed("live", live);
  const until = now() + 8000 + wait;
  // In use until a few calls after the survivor is gone (or the wait is over).
  let usedUntil = until;
  const using = keepUsing(user, () => usedUntil, 2000);
  const s = await openUsed("closed", closed);
  await s.call(...TOOL_OF.stubborn);
  await sleep(2000);
  const leafRe = /node .*mcpinit-stubborn-server$/;
  const before = new Set(sampler.alive(leafRe).map((r) => r.hostPid));
  await s.terminate(); // MetaMCP: kill(-pgid, SIGTERM) of the session's instances
  const closedAt = now();
  // The stubborn leaf outlives its npm exec and sh: an orphan, reparented to mcpinit.
  let orphan = null;
  let goneAt = null;
  while (now() < until) {
    await sleep(500);
    const leaves = sampler.alive(leafRe);
    orphan ??= leaves.find((r) => r.ppid === Number(env.INIT_PID)) ?? null;
    if (orphan && !leaves.some((r) => r.hostPid === orphan.hostPid)) {
      goneAt ??= now();
      break;
    }
  }
  usedUntil = Math.min(until, now() + 6000);
  await using;
  const fresh = new Tally();
  const last = await openUsed("fresh", fresh);
  await last.call(...TOOL_OF.stubborn);
  return { tally: live, fresh, before: before.size, orphan, closedAt, goneAt };
}

// ------------------------------------------------------------------ stubdup

// A tracked duplicate of a server that ignores EOF: MetaMCP holds more than one
// instance of the stubborn server (its start-up spare, a session's, the namespace's
// spare) and sessions are opened, use every server once and are abandoned (never
// closed: MetaMCP still tracks their instances) while another stays in use. Once one is idle,
// mcpinit must end a stubborn instance MetaMCP still tracks without MetaMCP counting a
// crash (its input closed, then an exit MetaMCP sees as clean). Waits for mcpinit's log
// to say a stubborn unit is gone, or E2E_STUBDUP_WAIT.
async function stubdup() {
  const live = new Tally();
  const leaked = new Tally();
  const wait = seconds("E2E_STUBDUP_WAIT", 60);
  const user = await openUsed("live", live);
  let usedUntil = now() + wait;
  const using = keepUsing(user, () => usedUntil, 2000);
  // Several: which instance a session gets depends on MetaMCP's pools (its start-up
  // spare, a namespace's idle server, a server's idle session), and the newest and the
  // spare of a server are kept by design; an older one used once and then idle is not.
  const abandon = Number(env.E2E_STUBDUP_ABANDON ?? 3);
  for (let i = 1; i <= abandon; i++) {
    const s = new Session(`abandoned${i}`, leaked);
    if (await s.open()) {
      await s.listTools(servers);
      for (const server of servers) await s.call(...TOOL_OF[server]);
    }
    await sleep(3000);
  }
  const leafRe = /node .*mcpinit-stubborn-server$/;
  const before = sampler.alive(leafRe).length;
  let goneAt = null;
  const startedAt = now();
  while (now() < usedUntil) {
    await sleep(1000);
    const stub = terminations(mcpinitEvents(env.NS_LOG)).filter((u) => /stubborn/.test(u.key));
    if (stub.some((u) => u.steps.some((e) => e.event === "unit_gone"))) {
      goneAt = now();
      break;
    }
  }
  // A few more calls after the end: MetaMCP's reaction, if any, shows in them.
  usedUntil = Math.min(usedUntil, now() + 6000);
  await using;
  const fresh = new Tally();
  const last = await openUsed("fresh", fresh);
  for (const server of servers) await last.call(...TOOL_OF[server]);
  return { tally: live, leaked, fresh, before, goneAfter: goneAt === null ? null : goneAt - startedAt };
}

// ------------------------------------------------------------------ twins

// Two servers, one command line: the newest instance of the key is one server's spare;
// the other server's spare is older and idle, and must live all the same.
async function twins() {
  const live = new Tally();
  const fresh = new Tally();
  const user = await openUsed("live", live);
  await keepUsing(user, now() + seconds("E2E_TWINS_SECONDS", 45), 2000);
  const last = await openUsed("fresh", fresh);
  for (const server of servers) await last.call(...TOOL_OF[server]);
  return { tally: live, fresh };
}

// ------------------------------------------------------------------ main

// The example compose file's values: the leak's workload, judged as a user would.
const compose = leak;
const scenarios = { healthy, leak, stubborn, twins, stubdup, compose };
if (!scenarios[scenario]) {
  console.error(`scenario.mjs: unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(", ")}`);
  process.exit(2);
}
sampler.start();
check("MetaMCP started an idle instance of every server", await spares());
const startedAt = now();
const result = await scenarios[scenario]();
sampler.sample();
sampler.stop();
// mcpinit's log lines are written as it acts; the last one of a unit (unit_gone) may
// trail by a scan, or by the graces when the unit was set out to end at the very end:
// wait for every unit's last line, up to the EOF and kill graces and a little more.
await sleep(1500);
for (const deadline = now() + 12_000; now() < deadline; await sleep(500)) {
  const open = terminations(mcpinitEvents(env.NS_LOG)).filter((u) => !u.steps.some((e) => e.event === "unit_gone" || e.event === "stuck"));
  if (open.length === 0) break;
}
const tallies = { "in use": result.tally };
if (result.leaked) tallies["leaked sessions (first use)"] = result.leaked;
if (result.fresh) tallies["a fresh session at the end"] = result.fresh;
console.log(`  measured (${scenario}, ${Math.round((now() - startedAt) / 1000)} s):`);
const { units, status, crashes, how, route, perInstance } = summarise(tallies);
const allNone = Object.values(status).length > 0 && Object.values(status).every((v) => v === "NONE");
const spareEnded = units.filter((u) => u.reason !== "orphan" && sampler.wasNewest(u.top, u.at));
const cap = Number(env.MCPINIT_MAX_PROCS ?? 128);
// An instance that read input within the idle time is in use: dedupe must keep it.
const idleMs = (() => {
  const m = String(env.MCPINIT_DEDUPE_IDLE ?? "10m").match(/^(\d+(?:\.\d+)?)(ms|s|m|h)?$/);
  if (!m) return 600_000;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"];
})();
const endedInUse = units.filter(
  (u) => !["orphan", "cap", "memory"].includes(u.reason) && u.inputAgo !== null && u.inputAgo < idleMs - 2000,
);

check("no call failed in the sessions in use", result.tally.failed === 0 && result.tally.calls > 0, `${result.tally.failed} of ${result.tally.calls}`);
check("no server is in ERROR (mcp_servers.error_status)", allNone, JSON.stringify(status));
check("MetaMCP counted no crash", crashes.length === 0, crashes.slice(0, 3).join(" | "));
check("dedupe ended no instance in use (input seen within the idle time)", endedInUse.length === 0, endedInUse.map((u) => `top ${u.top}: input ${(u.inputAgo / 1000).toFixed(1)} s before`).join(", "));
check("the spare (newest instance of a server) was never ended", spareEnded.length === 0, spareEnded.map((u) => `top ${u.top} ${u.key}`).join(", "));

if (scenario === "healthy") {
  check("mcpinit ended nothing", units.length === 0, units.map((u) => `${u.reason} top ${u.top}`).join(", "));
}
if (scenario === "leak") {
  const alive = sampler.aliveInstances();
  const perKey = [...alive.entries()].map(([k, v]) => `${k}: ${v.length}`).join("; ");
  measured("leaked sessions opened and abandoned", result.abandoned);
  measured("sessions MetaMCP still holds", result.metamcpSessions);
  measured("instances alive at the end, per command line", perKey);
  for (const server of servers.filter((s) => s !== "everything")) {
    const key = server === "time" ? "uvx" : server;
    const ended = units.filter((u) => u.key.includes(key === "uvx" ? "uvx" : "stdio"));
    const how = countHow(ended);
    measured(`  of them ${server}`, `${ended.length} ended (${howText(how)})`);
  }
  // Reclaimed leaked instances: whatever the reason is called (duplicate, idle).
  const dupes = units.filter((u) => !["orphan", "cap", "memory"].includes(u.reason));
  const byCap = units.filter((u) => u.reason === "cap" || u.reason === "memory");
  check("every leaked session found its servers' tools (the spare was alive)", result.leaked.failed === 0, `${result.leaked.failed} of ${result.leaked.calls}`);
  check("a fresh session at the end works", result.fresh.failed === 0, result.fresh.reasons.join(" | "));
  if (env.E2E_LEAK_DRIVES_CAP === "1") {
    // More leaked than the cap holds: the cap may act, but never costs a crash. A new
    // instance (3 processes a server) may pass the cap before the next look.
    const burst = 3 * servers.length;
    const unclean = units.filter((u) => !["EOF", "EXIT"].includes(u.how));
    check(`the leak was larger than the cap (${cap}) holds`, result.abandoned * burst > cap, `${result.abandoned} sessions of ${burst} processes`);
    check(`the process count stayed within the cap (${cap}) and one instance's burst (${burst})`, peak <= cap + burst, `peak ${peak}`);
    check("leaked instances were reclaimed", units.length >= Math.floor(result.abandoned / 2), `${units.length} ended of ${result.abandoned} leaked sessions`);
    check("the cap acted (the leak drove it)", byCap.length > 0, "no unit ended for the cap");
    check("every instance mcpinit ended ended cleanly (EOF or exit, no signal)", units.length > 0 && unclean.length === 0, unclean.slice(0, 4).map((u) => `${u.reason} top ${u.top}: ${u.how}`).join(", "));
  } else {
    check(`the process count stayed under the cap (${cap})`, peak <= cap, `peak ${peak}`);
    check("leaked instances were reclaimed as idle duplicates (not by the cap)", dupes.length >= Math.floor(result.abandoned / 2), `${dupes.length} duplicates ended of ${result.abandoned} leaked sessions`);
    check("the cap never had to act", byCap.length === 0, `${byCap.length} ended by cap/memory`);
    check("no instance needed SIGKILL", countHow(units).KILL === 0, "");
  }
}
if (scenario === "compose") {
  const limit = Number(env.E2E_PIDS_LIMIT || 0);
  measured("leaked sessions opened and abandoned", result.abandoned);
  check("a fresh session at the end works", result.fresh.failed === 0, result.fresh.reasons.join(" | "));
  check("every leaked session found its servers' tools", result.leaked.failed === 0, `${result.leaked.failed} of ${result.leaked.calls}`);
  const unclean = units.filter((u) => !["EOF", "EXIT"].includes(u.how));
  check("whatever mcpinit ended ended cleanly (EOF or exit, no signal)", unclean.length === 0, unclean.slice(0, 4).map((u) => `${u.reason} top ${u.top}: ${u.how}`).join(", "));
  if (limit) {
    const tasks = sampler.peakCgroup ?? sampler.peakTasks + 1;
    check(`the tasks stayed below the pids limit (${limit})`, tasks < limit, `peak ${tasks} tasks`);
    check("the kernel refused no fork or thread at the pids limit", sampler.refused === 0, `${sampler.refused} refused (pids.events max)`);
  }
}
if (scenario === "stubdup") {
  const stub = units.filter((u) => /stubborn/.test(u.key));
  measured("stubborn instances MetaMCP holds (start-up spare, in use, abandoned, spare)", result.before);
  measured("a stubborn instance ended by mcpinit, gone after", result.goneAfter === null ? "none within the wait" : `${(result.goneAfter / 1000).toFixed(1)} s`);
  for (const u of stub) measured("  stubborn unit", `${u.reason} top ${u.top}: ${u.how}`);
  const gone = stub.filter((u) => u.steps.some((e) => e.event === "unit_gone"));
  check("a tracked stubborn duplicate was ended", gone.length > 0, `${stub.length} stubborn units set out to end, ${gone.length} gone`);
  check("it ended cleanly (EOF or exit, no signal)", stub.length > 0 && stub.every((u) => ["EOF", "EXIT"].includes(u.how)), stub.map((u) => u.how).join(", "));
  check("the abandoned session had its tools", result.leaked.failed === 0, result.leaked.reasons.join(" | "));
  check("a fresh session at the end has every server's tools", result.fresh.failed === 0, result.fresh.reasons.join(" | "));
}
if (scenario === "stubborn") {
  const orphans = units.filter((u) => u.reason === "orphan");
  measured("stubborn leaves before the close", result.before);
  measured("the closed session's stubborn leaf", result.orphan ? `host pid ${result.orphan.hostPid}, orphaned` : "never seen orphaned");
  if (result.goneAt) measured("  reclaimed after", `${((result.goneAt - result.closedAt) / 1000).toFixed(1)} s`);
  for (const u of orphans) measured("  orphan unit", `top ${u.top} ended by ${u.how}`);
  check("the stubborn leaf became an orphan once MetaMCP closed its session", result.orphan !== null);
  check("mcpinit reclaimed it", result.goneAt !== null && orphans.length > 0, `${orphans.length} orphan units ended`);
  check("it took SIGKILL, as it ignores EOF and SIGTERM", orphans.some((u) => u.how === "KILL"));
  check("a fresh session at the end has the stubborn server", result.fresh.failed === 0, result.fresh.reasons.join(" | "));
}

if (scenario === "twins") {
  check("a fresh session at the end has both servers (both spares alive)", result.fresh.failed === 0, result.fresh.reasons.join(" | "));
}

// One line for a table of every case (tests/docker-metamcp/run.sh collects them).
const figures = {
  case: env.E2E_CASE ?? scenario,
  calls: result.tally.calls,
  failed: result.tally.failed,
  fresh_failed: result.fresh ? result.fresh.failed : null,
  crashes: crashes.length,
  status: Object.entries(status).map(([k, v]) => `${k}=${v}`).join(" "),
  ends: units.length,
  how,
  route,
  peak_procs: peak,
  peak_tasks: sampler.peakTasks,
  peak_cgroup: sampler.peakCgroup,
  refused: sampler.refused,
  tasks_per_instance: perInstance ? perInstance.join("..") : null,
  seconds: Math.round((now() - startedAt) / 1000),
  checks_failed: checks.filter((c) => !c.ok).length,
};
console.log(`figures: ${JSON.stringify(figures)}`);

let failed = 0;
for (const c of checks) {
  console.log(`${c.ok ? "pass" : "fail"}: ${scenario}: ${c.what}${c.ok || !c.detail ? "" : ` (${c.detail})`}`);
  if (!c.ok) failed += 1;
}
process.exit(failed ? 1 : 0);
