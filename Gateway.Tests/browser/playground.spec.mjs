// The gateway's playground page (/playground/) in real Chromium: Debian's /usr/bin/chromium,
// headless, driven by playwright-core (never a browser Playwright downloads: there is none).
//
//   node playground.spec.mjs <scenario> <gatewayBaseUrl> <upstreamBaseUrl> <screenshotDir>
//
// scenario: rest | predict   ask with REST + events, or with hub Predict: the answer grows token by
//                            token in order, the source documents (and tools, reasoning, next agent)
//                            render, and Abort mid-stream stops it;
//           notices          the upstream drops the gateway's session: the page shows
//                            gateway:upstream-lost, then gateway:upstream-restored, and still answers.
//
// Every wait is on a condition (the DOM, or the upstream's request log), with a time-out.
// stdout: one line of JSON, {scenario, abortedChatId?, ...}; exit 0. On failure: the error and the
// page's text on stderr, a <scenario>-failure.png screenshot, exit 1.

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 20_000;

// No outside network here: nothing in Chromium may try to reach one.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const [scenario, gatewayArg, upstreamArg, screenshotDir] = process.argv.slice(2);
if (!["rest", "predict", "notices"].includes(scenario) || !gatewayArg || !upstreamArg || !screenshotDir) {
  console.error("usage: node playground.spec.mjs <rest|predict|notices> <gatewayBaseUrl> <upstreamBaseUrl> <screenshotDir>");
  process.exit(2);
}
const gateway = gatewayArg.replace(/\/+$/, "");
const upstream = upstreamArg.replace(/\/+$/, "");

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

function equal(actual, expected, what) {
  check(JSON.stringify(actual) === JSON.stringify(expected), `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

/**
 * Records, in the page, every token span added to the transcript and every status change of a turn,
 * in one sequence, with the mutation batch it came in. Installed before asking, so nothing is missed.
 */
function installRecorder() {
  const recorder = { seq: 0, batches: 0, tokens: [], statuses: [], abortEvents: [] };
  const transcript = document.getElementById("transcript");
  const turnOf = (node) => [...transcript.querySelectorAll('[data-testid="turn"]')].indexOf(node.closest('[data-testid="turn"]'));
  new MutationObserver((records) => {
    const batch = ++recorder.batches;
    const t = performance.now();
    for (const r of records) {
      if (r.type === "childList") {
        for (const node of r.addedNodes) {
          if (node.nodeType === 1 && node.classList.contains("token")) {
            recorder.tokens.push({ turn: turnOf(node), index: Number(node.dataset.index), text: node.textContent, batch, t, seq: ++recorder.seq });
          } else if (node.nodeType === 3 && r.target.dataset?.testid === "event-log" && /(^|· )abort( ×\d+)?( ·|$)/.test(node.data)) {
            // The turn's event log is rewritten per event: this text is the log as of the abort event's arrival.
            recorder.abortEvents.push({ turn: turnOf(r.target), t, seq: ++recorder.seq });
          }
        }
      } else if (r.attributeName === "data-status") {
        recorder.statuses.push({ turn: turnOf(r.target), status: r.target.dataset.status, t, seq: ++recorder.seq });
      }
    }
  }).observe(transcript, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
  window.playgroundRecorder = recorder;
}

const recorded = (page) => page.evaluate(() => window.playgroundRecorder);

const turn = (n) => `[data-testid="turn"] >> nth=${n}`;

async function turnState(page, n) {
  return page.locator(turn(n)).evaluate((node) => ({
    status: node.dataset.status,
    settled: node.dataset.settled === "true",
    chatId: node.dataset.chatId,
    tokens: [...node.querySelectorAll(".token")].map((s) => s.textContent),
    answer: node.querySelector('[data-testid="answer"]').textContent,
    error: node.querySelector('[data-testid="turn-error"]').textContent,
  }));
}

/** Waits until turn n satisfies `condition` (evaluated in the page on the turn's element). */
async function waitForTurn(page, n, condition, arg, what) {
  try {
    await page.waitForFunction(
      ({ n, source, arg }) => {
        const node = document.querySelectorAll('[data-testid="turn"]')[n];
        // eslint-disable-next-line no-new-func
        return node !== undefined && new Function("node", "arg", `return (${source})(node, arg);`)(node, arg);
      },
      { n, source: condition.toString(), arg },
      { timeout: TIMEOUT, polling: "raf" },
    );
  } catch (error) {
    const state = await turnState(page, n).catch(() => null);
    throw new Failure(`turn ${n}: timed out waiting for ${what}; the turn is ${JSON.stringify(state)} (${error.message.split("\n")[0]})`);
  }
}

async function ask(page, { mode, chatflow, question, overrideConfig = "" }) {
  await page.check(mode === "rest" ? "#mode-rest" : "#mode-predict");
  await page.fill("#chatflow", chatflow);
  await page.fill("#override-config", overrideConfig);
  await page.fill("#question", question);
  await page.locator("#ask:not([disabled])").click({ timeout: TIMEOUT });
}

async function open(context) {
  const page = context.pages()[0] ?? (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => message.type() === "error" && problems.push(`console error: ${message.text()}`));
  await page.goto(`${gateway}/playground`);
  await page.waitForSelector('#connection-state[data-state="connected"]');
  check((await page.textContent("#connection-id")).length > 0, "the connection id is not shown");
  await page.click(".advanced summary"); // overrideConfig lives there
  await page.evaluate(installRecorder);
  return { page, problems };
}

/** Asks the `tokens` chatflow at a rate a person can watch: the answer must grow one token at a time, in order. */
async function growsTokenByToken(page, mode, n) {
  const count = 30, rate = 20;
  await ask(page, { mode, chatflow: "tokens", question: "Hi", overrideConfig: JSON.stringify({ count, rate }) });
  const expected = Array.from({ length: count }, (_, i) => `Hi:${i}`);
  // The REST answer can overtake the last tokens: wait for the text too.
  await waitForTurn(page, n, (node, text) => node.dataset.status === "done" && node.querySelector('[data-testid="answer"]').textContent === text,
    expected.join(""), "the whole answer");

  const state = await turnState(page, n);
  // Exactly the tokens, in order: `start`'s argument (the first token again) is not in the text.
  equal(state.tokens, expected, "the answer's tokens");
  const seen = (await recorded(page)).tokens.filter((t) => t.turn === n);
  equal(seen.map((t) => t.text), expected, "the tokens in the order they appeared");
  equal(seen.map((t) => t.index), expected.map((_, i) => i), "the token indexes in the order they appeared");
  const batches = new Set(seen.map((t) => t.batch)).size;
  const spreadMs = seen[seen.length - 1].t - seen[0].t;
  // 30 tokens at 20/s take ~1.45 s: the text grew in many steps over that time, not all at once.
  check(batches >= 10, `the answer appeared in only ${batches} steps, not token by token`);
  check(spreadMs >= 0.4 * ((count - 1) / rate) * 1000, `the tokens appeared within ${spreadMs.toFixed(0)} ms, not over ~${((count - 1) / rate).toFixed(2)} s`);
  return { batches, spreadMs: Math.round(spreadMs) };
}

/** Asks `all-events`: source documents, used tools, agent reasoning and the next agent are rendered. */
async function rendersEvents(page, mode, n) {
  await ask(page, { mode, chatflow: "all-events", question: "What does TROM.AI stream?" });
  await waitForTurn(page, n, (node) => node.dataset.settled === "true"
    && node.querySelector('[data-testid="answer"]').textContent === "Hello after end"
    && node.querySelectorAll('[data-testid="source-document"]').length === 1
    && node.querySelectorAll('[data-testid="used-tool"]').length === 1
    && node.querySelectorAll('[data-testid="agent-reasoning-step"]').length === 1
    && !node.querySelector('[data-testid="next-agent"]').hidden, undefined, "the answer with its source documents, tools, reasoning and next agent");

  const source = await page.locator(`${turn(n)} >> [data-testid="source-document"]`).textContent();
  check(source.includes("guide.md") && source.includes("p. 3") && source.includes("TROM.AI streams tokens."), `the source document reads "${source}"`);
  const tool = await page.locator(`${turn(n)} >> [data-testid="used-tool"]`).textContent();
  check(tool.includes("calculator") && tool.includes("3.5"), `the used tool reads "${tool}"`);
  const reasoning = await page.locator(`${turn(n)} >> [data-testid="agent-reasoning-step"]`).textContent();
  check(reasoning.includes("Supervisor") && reasoning.includes("Route to the writer") && reasoning.includes("Writer"), `the agent reasoning reads "${reasoning}"`);
  equal((await page.locator(`${turn(n)} >> [data-testid="next-agent"] .value`).textContent()).trim(), "Writer", "the next agent");
  const tokens = (await turnState(page, n)).tokens;
  equal(tokens, ["Hel", "lo", "", " after end"], "the all-events tokens");
}

/** Asks a long answer, presses Abort mid-stream, and checks that it stopped: no token after the abort. */
async function abortsMidStream(page, mode, n) {
  const count = 2000;
  await ask(page, { mode, chatflow: "tokens", question: "Long", overrideConfig: JSON.stringify({ count, rate: 20 }) });
  await waitForTurn(page, n, (node) => node.querySelectorAll(".token").length >= 5, undefined, "5 tokens");
  await page.locator("#abort:not([disabled])").click();
  await waitForTurn(page, n, (node) => node.dataset.settled === "true" && node.dataset.status === "aborted", undefined, "the aborted answer");
  check(await page.locator("#abort").isDisabled(), "Abort is still enabled after the answer stopped");

  // REST: TROM.AI's abort event marks the stop (tokens emitted before it may still be on their way
  // when the abort is pressed). Predict: disposing the stream is the stop; the page reads no more.
  const record = await recorded(page);
  const abortedAt = mode === "rest"
    ? record.abortEvents.find((a) => a.turn === n)
    : record.statuses.find((s) => s.turn === n && s.status === "aborted");
  check(abortedAt, `no ${mode === "rest" ? "abort event" : "aborted status"} was recorded`);
  const before = record.tokens.filter((t) => t.turn === n && t.seq < abortedAt.seq).length;
  const state = await turnState(page, n);
  check(state.tokens.length < count, `all ${count} tokens arrived: the abort stopped nothing`);
  equal(state.tokens, Array.from({ length: state.tokens.length }, (_, i) => `Long:${i}`), "the tokens before the abort");
  return { chatId: state.chatId, tokensAtAbort: before };
}

/** The upstream's request log has the abort of this chat (the gateway forwarded it). */
async function upstreamReceivedAbort(chatId) {
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const requests = await (await fetch(`${upstream}/test/requests`)).json();
    if (requests.some((r) => r.method === "PUT" && r.path === `/api/v1/chatmessage/abort/tokens/${chatId}`)) return;
    check(Date.now() < deadline, `the upstream never received the abort of chat ${chatId}`);
    // The log is another process's state, with no push channel: re-ask, briefly spaced.
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function restScenario(page) {
  const growth = await growsTokenByToken(page, "rest", 0);
  await rendersEvents(page, "rest", 1);
  await page.screenshot({ path: path.join(screenshotDir, "rest-events.png") });

  const aborted = await abortsMidStream(page, "rest", 2);
  await upstreamReceivedAbort(aborted.chatId);
  // The next answer comes after every event of the aborted one (one ordered queue per connection):
  // once it is here, a token the aborted answer still had coming would be on the page too.
  await ask(page, { mode: "rest", chatflow: "echo-question", question: "Still there?" });
  await waitForTurn(page, 3, (node) => node.dataset.status === "done" && node.querySelector('[data-testid="answer"]').textContent === "Still there?",
    undefined, "the answer after the abort");
  const after = await turnState(page, 2);
  equal(after.tokens.length, aborted.tokensAtAbort, "tokens of the aborted answer once the next one has come (none after its abort)");
  await page.screenshot({ path: path.join(screenshotDir, "rest-abort.png") });
  return { growth, abortedChatId: aborted.chatId, tokensAtAbort: aborted.tokensAtAbort };
}

async function predictScenario(page) {
  const growth = await growsTokenByToken(page, "predict", 0);
  await rendersEvents(page, "predict", 1);
  await page.screenshot({ path: path.join(screenshotDir, "predict-events.png") });

  const aborted = await abortsMidStream(page, "predict", 2);
  // Disposing the subscription is the abort: the gateway aborts upstream and ends the stream.
  await upstreamReceivedAbort(aborted.chatId);
  const after = await turnState(page, 2);
  equal(after.tokens.length, aborted.tokensAtAbort, "tokens of the aborted answer once the upstream stopped (none after the abort)");
  equal(await page.getAttribute("#connection-state", "data-state"), "connected", "the connection state after the abort");
  await page.screenshot({ path: path.join(screenshotDir, "predict-abort.png") });
  return { growth, abortedChatId: aborted.chatId, tokensAtAbort: aborted.tokensAtAbort };
}

async function noticesScenario(page) {
  const dropped = await (await fetch(`${upstream}/test/drop-sockets`, { method: "POST" })).json();
  check(dropped.dropped >= 1, "the upstream held no socket to drop");
  await page.waitForSelector('[data-testid="notice"][data-event="gateway:upstream-lost"]');
  await page.waitForSelector('[data-testid="notice"][data-event="gateway:upstream-restored"]');
  await page.waitForSelector('#connection-state[data-state="connected"]');
  const lost = await page.textContent('[data-testid="notice"][data-event="gateway:upstream-lost"]');
  check(lost.includes("io server disconnect"), `the upstream-lost notice reads "${lost}"`);

  // The same connection (same id) asks again: the gateway maps it to the new upstream session.
  await ask(page, { mode: "rest", chatflow: "echo-question", question: "Back?" });
  await waitForTurn(page, 0, (node) => node.dataset.status === "done" && node.querySelector('[data-testid="answer"]').textContent === "Back?",
    undefined, "the answer after the session came back");
  await page.screenshot({ path: path.join(screenshotDir, "notices.png") });
  return {};
}

const SCENARIOS = { rest: restScenario, predict: predictScenario, notices: noticesScenario };

fs.mkdirSync(screenshotDir, { recursive: true });
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), "playground-chromium-"));
let context;
let page;
let exitCode = 0;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1200, height: 820 },
  });
  const opened = await open(context);
  page = opened.page;
  const result = await SCENARIOS[scenario](page);
  check(opened.problems.length === 0, `the page reported errors:\n${opened.problems.join("\n")}`);
  process.stdout.write(`${JSON.stringify({ scenario, ...result })}\n`);
} catch (error) {
  exitCode = 1;
  console.error(error instanceof Failure ? `${scenario}: ${error.message}` : error);
  if (page) {
    await page.screenshot({ path: path.join(screenshotDir, `${scenario}-failure.png`) }).catch(() => {});
    console.error(`--- the page's transcript ---\n${await page.innerText("body").catch(() => "(unavailable)")}`);
  }
} finally {
  await context?.close().catch(() => {});
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
process.exit(exitCode);
