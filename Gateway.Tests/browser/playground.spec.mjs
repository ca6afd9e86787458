// The gateway's playground page (/playground/) in real Chromium: Debian's /usr/bin/chromium,
// headless, driven by playwright-core (never a browser Playwright downloads: there is none).
//
//   node playground.spec.mjs <scenario> <gatewayBaseUrl> <upstreamBaseUrl> <screenshotDir> [<options JSON>]
//
// scenario: rest | predict   ask with REST + events, or with hub Predict: the answer grows token by
//                            token in order, the source documents (and tools, reasoning, next agent)
//                            render, and Abort mid-stream stops it;
//           notices          the upstream drops the gateway's session: the page shows
//                            gateway:upstream-lost, then gateway:upstream-restored, and still answers;
//           chatflows        the page lists TROM.AI's chatflows (names, types), preselects ?chatflow=,
//                            asks one chosen from the list, and still takes an id it does not list;
//           keys             TROM.AI 3.x with keys: the list's 401 is shown, a keyed chatflow fails;
//                            with options.tromAiKey entered, it lists and answers both ways;
//           gateway-auth     gateway authentication on: the page says it wants a gateway key; with
//                            options.gatewayKey and options.tromAiKey it lists and answers both ways;
//           balanced         gatewayBaseUrl is a load balancer without affinity: the page answers;
//           no-websockets    a browser without WebSockets: the page negotiates and answers;
//           resume           a reload halfway through a Predict: the new page resumes its stream, and
//                            the answer completes with no gap and no duplicate.
// Except where the browser cannot, the page must make no negotiate request: its hub WebSockets go
// straight to /hubs/prediction (no connection id from a negotiation in their URL).
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

const SCENARIO_NAMES = ["rest", "predict", "notices", "chatflows", "keys", "gateway-auth", "balanced", "no-websockets", "resume"];
const [scenario, gatewayArg, upstreamArg, screenshotDir, optionsArg = "{}"] = process.argv.slice(2);
if (!SCENARIO_NAMES.includes(scenario) || !gatewayArg || !upstreamArg || !screenshotDir) {
  console.error(`usage: node playground.spec.mjs <${SCENARIO_NAMES.join("|")}> <gatewayBaseUrl> <upstreamBaseUrl> <screenshotDir> [<options JSON>]`);
  process.exit(2);
}
const gateway = gatewayArg.replace(/\/+$/, "");
const upstream = upstreamArg.replace(/\/+$/, "");
const options = JSON.parse(optionsArg);

/**
 * Console errors a scenario causes on purpose, which the page must otherwise never log: Chromium's
 * own line for each refused request, and SignalR's for a start that failed.
 */
const EXPECTED_CONSOLE_ERRORS = {
  chatflows: [/status of 404/],
  keys: [/status of 401/, /status of 500/],
  "gateway-auth": [/status of 401/, /status of 500/, /WebSocket connection to .* failed/, /Failed to start the connection/, /Failed to complete negotiation/],
};

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

/** Asks `question`; of `chatflow` when given, else of the chatflow the page has chosen. */
async function ask(page, { mode, chatflow, question, overrideConfig = "" }) {
  await page.check(mode === "rest" ? "#mode-rest" : "#mode-predict");
  if (chatflow !== undefined) await page.fill("#chatflow", chatflow);
  await page.fill("#override-config", overrideConfig);
  await page.fill("#question", question);
  await page.locator("#ask:not([disabled])").click({ timeout: TIMEOUT });
}

/** Opens the page at `query` and records, from the browser, its problems, its requests and its WebSockets. */
async function open(page, { query = "", connected = true } = {}) {
  page.setDefaultTimeout(TIMEOUT);
  const expected = EXPECTED_CONSOLE_ERRORS[scenario] ?? [];
  const opened = { page, problems: [], requests: [], webSockets: [] };
  page.on("pageerror", (error) => opened.problems.push(`page error: ${error.message}`));
  page.on("console", (message) => message.type() === "error" && !expected.some((e) => e.test(message.text()))
    && opened.problems.push(`console error: ${message.text()}`));
  page.on("request", (request) => opened.requests.push({ method: request.method(), url: request.url() }));
  page.on("websocket", (socket) => opened.webSockets.push(socket.url()));
  await page.goto(`${gateway}/playground${query}`);
  if (connected) await waitConnected(page);
  await page.click(".advanced summary"); // overrideConfig lives there
  await page.evaluate(installRecorder);
  return opened;
}

async function waitConnected(page) {
  await page.waitForSelector('#connection-state[data-state="connected"]');
  check((await page.textContent("#connection-id")).length > 0, "the connection id is not shown");
}

const negotiations = (opened) => opened.requests.filter((r) => new URL(r.url).pathname.endsWith("/hubs/prediction/negotiate"));

/**
 * The page connected without negotiation: not one negotiate request, and every hub WebSocket went
 * straight to /hubs/prediction, with no connection id a negotiation would have handed out.
 */
async function connectedWithoutNegotiation(opened, since = 0) {
  equal(negotiations(opened).slice(since).map((r) => r.url), [], "negotiate requests");
  const hubSockets = opened.webSockets.filter((url) => new URL(url).pathname.endsWith("/hubs/prediction"));
  check(hubSockets.length > 0, `no WebSocket to the hub; WebSockets: ${JSON.stringify(opened.webSockets)}`);
  for (const url of hubSockets) check(!new URL(url).searchParams.has("id"), `a hub WebSocket carries a negotiated connection id: ${url}`);
  equal(await opened.page.getAttribute("#connection-transport", "data-negotiated"), "false", "the page's transport says negotiated");
  return hubSockets.length;
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

/** The chatflows the page lists: id, the option's text, and the type it shows. */
const listedChatflows = (page) => page.$$eval("#chatflow-list option", (options) =>
  options.filter((o) => o.value !== "").map((o) => ({ id: o.value, text: o.textContent, type: o.dataset.type })));

/** Waits for the answer of turn n to be `text`, in tokens in order, after the turn is done. */
async function answered(page, n, text, what) {
  await waitForTurn(page, n, (node, text) => node.dataset.status === "done" && node.querySelector('[data-testid="answer"]').textContent === text,
    text, what);
  return turnState(page, n);
}

async function chatflowsScenario(page) {
  await page.waitForSelector('#chatflows-status[data-state="ok"]');
  const listed = await listedChatflows(page);
  equal(await page.inputValue("#chatflow"), "demo", "the chatflow id, from ?chatflow=demo");
  equal(await page.inputValue("#chatflow-list"), "demo", "the chatflow chosen in the list");
  const chosen = await page.locator("#chatflow-list option:checked").textContent();
  check(chosen.includes("Demo: a streamed answer") && chosen.includes("CHATFLOW"), `the chosen chatflow reads "${chosen}"`);

  // As a newcomer asks: the preselected demo answers, with its two sources.
  await ask(page, { mode: "rest", question: "What is this?", overrideConfig: JSON.stringify({ rate: 0 }) });
  await waitForTurn(page, 0, (node) => node.dataset.status === "done" && node.querySelectorAll('[data-testid="source-document"]').length === 2,
    undefined, "the demo's answer with its two sources");
  const demo = await turnState(page, 0);
  check(demo.tokens.length > 10 && demo.answer.includes("What is this?"), `the demo answered "${demo.answer}"`);

  // Chosen from the list: the id follows, and that chatflow answers.
  await page.selectOption("#chatflow-list", "echo-question");
  equal(await page.inputValue("#chatflow"), "echo-question", "the chatflow id once echo-question is chosen in the list");
  await ask(page, { mode: "predict", question: "Chosen from the list" });
  await answered(page, 1, "Chosen from the list", "the answer of the chatflow chosen in the list");

  // An id TROM.AI does not list can still be typed, and asked: its answer says why it failed.
  await page.fill("#chatflow", "not-listed");
  equal(await page.inputValue("#chatflow-list"), "", "the list's choice once an unlisted id is typed");
  await ask(page, { mode: "rest", question: "Anyone?" });
  await waitForTurn(page, 2, (node) => node.dataset.status === "error", undefined, "the failed answer of an unknown chatflow");
  const unknown = (await turnState(page, 2)).error;
  check(unknown.includes("404") && unknown.includes("Chatflow not-listed not found"), `the unknown chatflow's answer reads "${unknown}"`);
  await page.screenshot({ path: path.join(screenshotDir, "chatflows.png") });
  return { listed };
}

async function keysScenario(page) {
  // Without a key, 3.x's admin API refuses the list: the page says why, and the id box is the way.
  await page.waitForSelector('#chatflows-status[data-state="error"]');
  const refused = await page.textContent("#chatflows-status");
  check(refused.includes("401") && refused.includes("Unauthorized Access"), `the chatflow list's status reads "${refused}"`);
  check(await page.locator("#chatflow-list").isHidden(), "a list is shown, though TROM.AI listed nothing");
  equal(await page.inputValue("#chatflow"), "echo-question", "the chatflow id, from ?chatflow=echo-question");
  await page.screenshot({ path: path.join(screenshotDir, "keys-refused.png") });

  // A chatflow with its own key, asked without it: TROM.AI's refusal is shown.
  await ask(page, { mode: "rest", question: "Without the key?" });
  await waitForTurn(page, 0, (node) => node.dataset.status === "error", undefined, "the refused answer");
  const withoutKey = await turnState(page, 0);
  check(withoutKey.error.includes("Unauthorized"), `the answer without the key reads "${withoutKey.error}"`);

  // The key entered (Enter applies it, and asks nothing): a new hub connection carries it, and the list comes.
  const before = await page.textContent("#connection-id");
  await page.fill("#tromai-key", options.tromAiKey);
  await page.press("#tromai-key", "Enter");
  await page.waitForSelector('#chatflows-status[data-state="ok"]');
  await page.waitForFunction((before) => document.getElementById("connection-state").dataset.state === "connected"
    && !["", before].includes(document.getElementById("connection-id").textContent), before);
  equal(await page.locator('[data-testid="turn"]').count(), 1, "turns after Enter in the key field");
  const listed = await listedChatflows(page);
  check(listed.some((c) => c.id === "agentflow" && c.type === "AGENTFLOW" && c.text.includes("AGENTFLOW")), `the list lacks the agentflow: ${JSON.stringify(listed)}`);
  equal(await page.inputValue("#chatflow-list"), "echo-question", "the chatflow chosen in the list");

  // With the key, over REST (its header) and over Predict (the hub connection's key).
  await ask(page, { mode: "rest", question: "With the key?" });
  const rest = await answered(page, 1, "With the key?", "the keyed chatflow's answer over REST");
  await page.selectOption("#chatflow-list", "agentflow");
  await ask(page, { mode: "predict", question: "6*7?" });
  const predict = await answered(page, 2, "Agentflow V2 looked that up: 6*7? = 42.", "the keyed agentflow's answer over Predict");
  await page.screenshot({ path: path.join(screenshotDir, "keys.png") });
  return { listed, refusedChatId: withoutKey.chatId, restChatId: rest.chatId, predictChatId: predict.chatId };
}

async function gatewayAuthScenario(page, opened) {
  // Without a gateway key the WebSocket is refused; the page negotiates to learn why, and says so.
  await page.waitForSelector('#connection-state[data-state="disconnected"]');
  const refusal = await page.textContent('[data-testid="notice"][data-event="closed"]');
  check(refusal.includes("enter a gateway key"), `the refusal notice reads "${refusal}"`);
  check(await page.locator("#gateway-key").isVisible(), "the gateway key field is not shown");
  await page.waitForSelector('#chatflows-status[data-state="error"]');
  const refused = await page.textContent("#chatflows-status");
  check(refused.includes("401"), `the chatflow list's status reads "${refused}"`);
  const negotiatedBefore = negotiations(opened).length;
  check(negotiatedBefore > 0, "the page did not negotiate to learn why its WebSocket was refused");

  await page.fill("#tromai-key", options.tromAiKey);
  await page.fill("#gateway-key", options.gatewayKey);
  await page.click("#use-keys");
  await waitConnected(page);
  await page.waitForSelector('#chatflows-status[data-state="ok"]');
  await connectedWithoutNegotiation(opened, negotiatedBefore);

  // REST: the gateway key in Authorization, the TROM.AI key apart, and the keyed chatflow answers.
  await ask(page, { mode: "rest", question: "Through both keys?" });
  const rest = await answered(page, 0, "Through both keys?", "the keyed chatflow's answer over REST");
  // Predict: the WebSocket carries the gateway key; the page handed the TROM.AI key to its connection.
  await ask(page, { mode: "predict", question: "Predict too?" });
  const predict = await answered(page, 1, "Predict too?", "the keyed chatflow's answer over Predict");
  await page.screenshot({ path: path.join(screenshotDir, "gateway-auth.png") });
  return { restChatId: rest.chatId, predictChatId: predict.chatId, negotiatedBefore };
}

/** Tokens `${question}:0..count-1` asked of `tokens` (chosen by ?chatflow=tokens), at full speed. */
async function tokensInOrder(page, n, mode, question, count = 30) {
  await ask(page, { mode, question, overrideConfig: JSON.stringify({ count }) });
  const expected = Array.from({ length: count }, (_, i) => `${question}:${i}`);
  const state = await answered(page, n, expected.join(""), `the ${count} tokens over ${mode}`);
  equal(state.tokens, expected, `the tokens over ${mode}`);
  return state;
}

async function balancedScenario(page) {
  await tokensInOrder(page, 0, "rest", "Across");
  await tokensInOrder(page, 1, "predict", "Streamed");
  await page.screenshot({ path: path.join(screenshotDir, "balanced.png") });
  return {};
}

async function noWebSocketsScenario(page, opened) {
  check(negotiations(opened).length > 0, "the page did not negotiate");
  equal(opened.webSockets, [], "WebSockets opened by a browser without WebSockets");
  equal(await page.getAttribute("#connection-transport", "data-negotiated"), "true", "the page's transport says negotiated");
  const why = await page.textContent('[data-testid="notice"][data-event="negotiated"]');
  check(why.includes("no WebSockets") && why.includes("session affinity"), `the negotiated notice reads "${why}"`);
  await tokensInOrder(page, 0, "rest", "Negotiated");
  return {};
}

/**
 * Reloads the page halfway through a Predict, as a user does: the prediction runs on in the gateway,
 * and the new page resumes its stream by itself, so the answer completes with no gap and no duplicate.
 */
async function resumeScenario(page) {
  const count = 100, rate = 20;
  await ask(page, { mode: "predict", chatflow: "tokens", question: "Reload", overrideConfig: JSON.stringify({ count, rate }) });
  await waitForTurn(page, 0, (node) => node.querySelectorAll(".token").length >= 15, undefined, "15 tokens before the reload");
  const before = await turnState(page, 0);
  await page.reload();
  await waitConnected(page);

  const expected = Array.from({ length: count }, (_, i) => `Reload:${i}`);
  const after = await answered(page, 0, expected.join(""), "the resumed answer");
  equal(after.tokens, expected, "the tokens of the resumed answer");
  equal(after.chatId, before.chatId, "the resumed turn's chat id");
  equal(await page.getAttribute(turn(0), "data-resumed"), "true", "the turn's resumed mark");
  check(before.tokens.length < count, `all ${count} tokens were in before the reload: nothing was resumed`);
  equal(await page.evaluate(() => sessionStorage.getItem("playground.resume")), null, "the saved stream once the answer is complete");
  const requests = await (await fetch(`${upstream}/test/requests`)).json();
  check(!requests.some((r) => r.method === "PUT" && r.path === `/api/v1/chatmessage/abort/tokens/${before.chatId}`), "the reload aborted the prediction upstream");
  await page.screenshot({ path: path.join(screenshotDir, "resume.png") });
  return { chatId: before.chatId, tokensBeforeReload: before.tokens.length };
}

/** How each scenario opens the page. */
const SETUP = {
  chatflows: { query: "?chatflow=demo" },
  keys: { query: "?chatflow=echo-question" },
  "gateway-auth": { query: "?chatflow=echo-question", connected: false },
  balanced: { query: "?chatflow=tokens" },
  "no-websockets": { query: "?chatflow=tokens" },
};

const SCENARIOS = {
  rest: directly(restScenario),
  predict: directly(predictScenario),
  notices: directly(noticesScenario),
  chatflows: directly(chatflowsScenario),
  keys: directly(keysScenario),
  "gateway-auth": gatewayAuthScenario,
  balanced: directly(balancedScenario),
  "no-websockets": noWebSocketsScenario,
  resume: directly(resumeScenario),
};

/** The scenario, then the check that the page never negotiated. */
function directly(run) {
  return async (page, opened) => {
    const result = await run(page, opened);
    return { ...result, hubWebSockets: await connectedWithoutNegotiation(opened) };
  };
}

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
  if (scenario === "no-websockets") {
    // A browser without WebSockets (old, or locked down): the page must fall back to negotiation.
    await context.addInitScript(() => { delete window.WebSocket; });
  }
  page = context.pages()[0] ?? (await context.newPage());
  const opened = await open(page, SETUP[scenario] ?? {});
  const result = await SCENARIOS[scenario](page, opened);
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
