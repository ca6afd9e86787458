// The gateway's chat page: TROM.AI's streaming guide in a browser, with SignalR in place of
// Socket.IO. Two ways to ask, as in the README:
//   REST + events: connection.on(...) for every event, GetSocketIOClientId, then POST
//                  /api/v1/prediction/<id> through the gateway; its JSON answer ends the turn.
//   hub Predict:   connection.stream("Predict", id, body) yields {event, data, seq}, ending with "result";
//                  after a reload mid-answer, connection.stream("Resume", streamId, 0) gives it again.
// signalr.min.js, loaded before this module, defines the global `signalR`.
//
// The page's state is a few variables (keys, connection, current turn), each set in one place, so
// that a later version can restore them after a reload.

const { signalR } = window;

// Relative to the page (/playground/), so the page works behind a path base too.
const hubUrl = new URL("../hubs/prediction", location.href).href;
const apiUrl = (path) => new URL(`../api/v1/${path}`, location.href).href;
const predictionUrl = (chatflowId) => apiUrl(`prediction/${encodeURIComponent(chatflowId)}`);

/** TROM.AI's events, both eras. The REST flow needs a handler per name; a Predict stream carries every event anyway. */
const UPSTREAM_EVENTS = [
  "start", "token", "thinking", "sourceDocuments", "artifacts", "usedTools", "calledTools", "fileAnnotations",
  "tool", "agentReasoning", "nextAgent", "nextAgentFlow", "agentFlowExecutedData", "agentFlowEvent", "action",
  "metadata", "usageMetadata", "error", "abort", "end",
];

const byId = (id) => document.getElementById(id);
const ui = {
  state: byId("connection-state"),
  transport: byId("connection-transport"),
  connectionId: byId("connection-id"),
  reconnect: byId("reconnect"),
  keys: byId("keys"),
  keysSummary: byId("keys-summary"),
  keysForm: byId("keys-form"),
  tromAiKey: byId("tromai-key"),
  gatewayKey: byId("gateway-key"),
  useKeys: byId("use-keys"),
  form: byId("ask-form"),
  chatflowList: byId("chatflow-list"),
  chatflowsStatus: byId("chatflows-status"),
  chatflow: byId("chatflow"),
  question: byId("question"),
  overrideConfig: byId("override-config"),
  formError: byId("form-error"),
  ask: byId("ask"),
  abort: byId("abort"),
  notices: byId("notices"),
  transcript: byId("transcript"),
  turnTemplate: byId("turn-template"),
};

/**
 * The keys the user entered, for this tab only: a reload keeps them, closing the tab forgets them.
 * tromAi: a chatflow's API key, for TROM.AI. gateway: the gateway's own credential, when its authentication is on.
 */
const keys = {
  tromAi: sessionStorage.getItem("playground.tromAiKey") ?? "",
  gateway: sessionStorage.getItem("playground.gatewayKey") ?? "",
};

/** The hub connection: replaced as a whole when the keys change, since a connection's key is fixed when it opens. */
let connection = null;
/** The id to send as socketIOClientId; a reconnected connection has a new one. */
let socketIOClientId = null;
/** The turn being answered. One at a time: TROM.AI streams per socket, not per request. */
let current = null;
/**
 * The turn the connection's events belong to: the last one asked over REST. It stays the target
 * after its answer has come, because the answer can overtake the last events.
 */
let restTarget = null;

// ----- Rendering --------------------------------------------------------------------------------

const element = (tag, className, text) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
};

const json = (value, max = 400) => {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? `${text.slice(0, max)}…` : text;
};

/** agentReasoning came as a JSON string in 1.8 and as the array itself from 2.0. */
const parsed = (value) => {
  if (typeof value !== "string") return value;
  try {
    return JSON.parse(value);
  } catch {
    return value;
  }
};

const asList = (value) => (Array.isArray(value) ? value : value == null ? [] : [value]);

function sourceDocument(doc) {
  const li = element("li");
  li.dataset.testid = "source-document";
  const meta = doc?.metadata ?? {};
  const origin = [meta.source ?? meta.url ?? meta.title, meta.page !== undefined ? `p. ${meta.page}` : null,
    typeof meta.score === "number" ? `score ${meta.score.toFixed(2)}` : null].filter(Boolean).join(" · ");
  li.append(element("span", "origin", origin || "document"), element("blockquote", null, doc?.pageContent ?? json(doc)));
  return li;
}

function usedTool(tool) {
  const li = element("li");
  li.dataset.testid = "used-tool";
  li.append(element("code", "name", tool?.tool ?? "tool"), "(", element("code", null, json(tool?.toolInput ?? "")), ") → ",
    element("code", null, json(tool?.toolOutput ?? "")));
  return li;
}

function reasoningStep(step) {
  const li = element("li");
  li.dataset.testid = "agent-reasoning-step";
  li.append(element("strong", null, step?.agentName ?? step?.nodeName ?? "agent"));
  const messages = asList(step?.messages).filter((m) => m !== "");
  if (messages.length > 0) li.append(" ", element("span", null, messages.map((m) => json(m)).join(" ")));
  if (step?.next) li.append(" ", element("span", "next", `→ ${step.next}`));
  if (step?.instructions) li.append(element("div", "instructions", step.instructions));
  return li;
}

function otherEvent(name, args) {
  const li = element("li");
  li.dataset.event = name;
  li.append(element("code", "name", name), " ", element("span", null, args.length === 0 ? "(no argument)" : args.map((a) => json(a)).join(", ")));
  return li;
}

/** What each event shows in its turn. Anything else is listed under "Other events". */
const VIEWS = {
  // Its argument is the first token again, emitted as a token right after: do not append it.
  start: (turn) => turn.streaming(),
  token: (turn, [text]) => turn.token(text),
  sourceDocuments: (turn, [docs]) => turn.list("sourceDocuments", asList(docs).map(sourceDocument)),
  usedTools: (turn, [tools]) => turn.list("usedTools", asList(tools).map(usedTool)),
  agentReasoning: (turn, [steps]) => turn.list("agentReasoning", asList(parsed(steps)).map(reasoningStep)),
  nextAgent: (turn, [agent]) => turn.value("nextAgent", typeof agent === "string" ? agent : json(agent)),
  // Not the end of the answer (agents send end, then more tokens): the HTTP answer or Predict's result is.
  end: () => {},
  abort: (turn) => turn.aborted(),
  error: (turn, [message]) => turn.showError(typeof message === "string" ? message : json(message)),
};

class Turn {
  constructor({ chatflowId, question, mode, chatId }) {
    Object.assign(this, { chatflowId, mode, chatId });
    this.node = ui.turnTemplate.content.firstElementChild.cloneNode(true);
    this.node.dataset.mode = mode;
    this.node.dataset.chatflow = chatflowId;
    this.node.dataset.chatId = chatId;
    this.part("question").textContent = question;
    this.part("turn-meta").textContent = `${chatflowId} · ${mode === "rest" ? "REST + events" : "hub Predict"}`;
    this.answer = this.part("answer");
    this.tokens = 0;
    this.counts = new Map();
    this.startedAt = performance.now();
    this.settled = false;
    this.wasAborted = false;
    this.abortRequested = false;
    ui.transcript.querySelector(".empty")?.remove();
    ui.transcript.append(this.node);
    this.node.scrollIntoView({ block: "end" });
  }

  part(testid) {
    return this.node.querySelector(`[data-testid="${testid}"]`);
  }

  setStatus(status, label = status) {
    this.node.dataset.status = status;
    this.part("turn-status").textContent = label;
  }

  /** One upstream event, as it arrived: name and arguments. */
  event(name, args) {
    this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
    this.part("event-log").textContent = [...this.counts].map(([n, c]) => (c > 1 ? `${n} ×${c}` : n)).join(" · ");
    const follow = ui.transcript.scrollHeight - ui.transcript.scrollTop - ui.transcript.clientHeight < 40;
    (VIEWS[name] ?? ((turn) => turn.list("other", [otherEvent(name, args)])))(this, args);
    if (follow) ui.transcript.scrollTop = ui.transcript.scrollHeight;
  }

  streaming() {
    if (!this.settled && !this.wasAborted && this.node.dataset.status === "waiting") this.setStatus("streaming");
  }

  token(text) {
    const span = element("span", "token", typeof text === "string" ? text : json(text));
    span.dataset.index = String(this.tokens++);
    this.answer.append(span);
    this.streaming();
  }

  list(panel, items) {
    const section = this.node.querySelector(`[data-panel="${panel}"]`);
    section.hidden = false;
    section.querySelector("ol").append(...items);
  }

  value(panel, text) {
    const section = this.node.querySelector(`[data-panel="${panel}"]`);
    section.hidden = false;
    section.querySelector(".value").textContent = text;
  }

  aborted() {
    if (this.settled) return; // a late abort of an earlier prediction: nothing to stop here
    this.wasAborted = true;
    this.setStatus("aborted");
  }

  showError(message) {
    const error = this.part("turn-error");
    error.hidden = false;
    error.textContent = message;
  }

  /** Marks the turn over; false when it already was. */
  settle() {
    if (this.settled) return false;
    this.settled = true;
    this.node.dataset.settled = "true";
    return true;
  }

  /** The answer has come (REST's JSON, Predict's result), or the user stopped reading: the turn is over. */
  finish() {
    if (!this.settle()) return;
    const seconds = ((performance.now() - this.startedAt) / 1000).toFixed(1);
    // Asked to abort: the answer can overtake the abort event, but this answer is the aborted one.
    const status = this.wasAborted || this.abortRequested ? "aborted" : "done";
    this.setStatus(status, `${status} · ${seconds} s`); // the tokens are counted below: the answer can overtake the last ones
    turnOver(this);
  }

  fail(message) {
    if (!this.settle()) return;
    this.showError(message);
    this.setStatus("error", "failed");
    turnOver(this);
  }
}

function turnOver(turn) {
  if (current === turn) current = null;
  updateControls();
}

// ----- Keys ---------------------------------------------------------------------------------------

/**
 * The headers of the page's REST calls (the chatflow list, predictions), by README's "TROM.AI keys":
 * without a gateway credential (the gateway's authentication off) the TROM.AI key is TROM.AI's own
 * `Authorization: Bearer`; with one, that header is the gateway's and the TROM.AI key goes apart.
 */
function restHeaders() {
  if (keys.gateway) return { Authorization: `Bearer ${keys.gateway}`, ...(keys.tromAi && { "X-TromAi-Key": keys.tromAi }) };
  return keys.tromAi ? { Authorization: `Bearer ${keys.tromAi}` } : {};
}

/**
 * What the hub connection sends as `access_token` (browsers cannot set headers on a WebSocket): the
 * gateway's credential, or, with its authentication off, the TROM.AI key, which the gateway then uses
 * for this connection's Predict and Abort.
 */
const hubToken = () => keys.gateway || keys.tromAi;

function remember(name, value) {
  if (value) sessionStorage.setItem(name, value);
  else sessionStorage.removeItem(name);
}

function showKeys() {
  ui.tromAiKey.value = keys.tromAi;
  ui.gatewayKey.value = keys.gateway;
  ui.keysSummary.textContent = [keys.tromAi && "TROM.AI", keys.gateway && "gateway"].filter(Boolean).join(" + ") || "none";
}

async function useKeys() {
  const before = hubToken();
  keys.tromAi = ui.tromAiKey.value.trim();
  keys.gateway = ui.gatewayKey.value.trim();
  remember("playground.tromAiKey", keys.tromAi);
  remember("playground.gatewayKey", keys.gateway);
  showKeys();
  notice("ok", `Using ${ui.keysSummary.textContent === "none" ? "no keys" : `keys: ${ui.keysSummary.textContent}`}.`, "keys");
  const listed = listChatflows();
  if (hubToken() !== before || connection?.state !== signalR.HubConnectionState.Connected) await connect();
  else await sendTromAiKey(connection);
  await listed;
}

// ----- Chatflows ----------------------------------------------------------------------------------

/** The latest listing wins: one started for new keys can finish before an older one. */
let listing = 0;

function showChatflowsStatus(state, text) {
  ui.chatflowsStatus.dataset.state = state;
  ui.chatflowsStatus.textContent = text;
}

/** Why a request failed, from TROM.AI's error JSON (`message`, 3.x's admin API: `error`) or its text. */
function reasonOf(response, body) {
  const reason = body?.message ?? body?.error ?? (typeof body === "string" ? body.trim() : json(body));
  return `${response.status}${reason ? `: ${json(reason, 200)}` : response.statusText ? ` ${response.statusText}` : ""}`;
}

/** GET /api/v1/chatflows through the gateway, with the page's keys. On failure the id box is the way, with the reason shown. */
async function listChatflows() {
  const attempt = ++listing;
  showChatflowsStatus("loading", "Listing TROM.AI's chatflows…");
  let problem;
  try {
    const response = await fetch(apiUrl("chatflows"), { headers: restHeaders() });
    const body = await answerOf(response);
    if (attempt !== listing) return;
    // 3.x answers a page ({data, total}) when asked for one; the whole list is an array.
    const flows = Array.isArray(body) ? body : body?.data;
    if (response.ok && Array.isArray(flows)) {
      showChatflows(flows);
      showChatflowsStatus("ok", `${flows.length} chatflow${flows.length === 1 ? "" : "s"} from TROM.AI; or type an id below.`);
      return;
    }
    // Not "TROM.AI answered": with its authentication on, a 401 can be the gateway's.
    problem = response.ok ? "the answer is not a list" : reasonOf(response, body);
    if (response.status === 401 || response.status === 403) {
      problem += ". Enter an API key under Keys, or type a chatflow id";
      ui.keys.open = true;
    }
  } catch (error) {
    if (attempt !== listing) return;
    problem = error.message;
  }
  showChatflows([]);
  showChatflowsStatus("error", `Cannot list chatflows: ${problem}.`);
}

function showChatflows(flows) {
  const options = flows.filter((flow) => typeof flow?.id === "string").map((flow) => {
    const option = new Option(flow.type ? `${flow.name ?? flow.id} · ${flow.type}` : (flow.name ?? flow.id), flow.id);
    option.dataset.type = flow.type ?? "";
    option.title = flow.id;
    return option;
  });
  ui.chatflowList.replaceChildren(new Option("", ""), ...options);
  ui.chatflowList.hidden = options.length === 0;
  showChosen();
}

/** The list follows the id box: it shows the chatflow with that id when it lists one. */
function showChosen() {
  const id = ui.chatflow.value.trim();
  const listed = id !== "" && [...ui.chatflowList.options].some((o) => o.value === id);
  ui.chatflowList.options[0].text = id === "" ? "Choose a chatflow…" : listed ? "Another id (type it below)" : `Another id: ${id}`;
  ui.chatflowList.value = listed ? id : "";
}

// ----- Connection ---------------------------------------------------------------------------------

function notice(kind, text, event = "") {
  const li = element("li", kind);
  li.dataset.testid = "notice";
  li.dataset.event = event;
  li.append(element("time", null, new Date().toLocaleTimeString()), " ", text);
  ui.notices.prepend(li);
}

function showState(state, label = state) {
  ui.state.dataset.state = state;
  ui.state.textContent = label;
  ui.reconnect.hidden = state !== "disconnected";
  updateControls();
}

function updateControls() {
  const connected = connection?.state === signalR.HubConnectionState.Connected;
  ui.ask.disabled = !connected || current !== null;
  ui.abort.disabled = current === null || current.abortRequested || current.settled;
  // New keys mean a new hub connection, which would cut the answer being streamed.
  ui.useKeys.disabled = current !== null;
}

function forgetId() {
  socketIOClientId = null;
  ui.connectionId.textContent = "";
}

async function identify(hub) {
  socketIOClientId = await hub.invoke("GetSocketIOClientId");
  ui.connectionId.textContent = socketIOClientId;
  await sendTromAiKey(hub);
}

/**
 * With a gateway key, that is the one credential a browser's WebSocket carries: the TROM.AI key
 * reaches the connection (for its Predict and Abort) by a hub call instead, over the connection.
 */
async function sendTromAiKey(hub) {
  if (keys.gateway) await hub.invoke("UseTromAiKey", keys.tromAi || null);
}

/** Whether the WebSocket of the latest direct attempt opened: if not, the browser or its network cannot do WebSockets. */
let webSocketOpened = false;

/** The browser's WebSocket, noting when one opens (SignalR's error for a socket that never opened says nothing more). */
const ObservedWebSocket = typeof WebSocket === "function"
  ? class extends WebSocket {
    constructor(...args) {
      super(...args);
      this.addEventListener("open", () => { webSocketOpened = true; });
    }
  }
  : null;

/**
 * A hub connection. Direct: WebSockets without negotiation, one HTTP request (the WebSocket's), which
 * any gateway instance can take, behind any load balancer. Otherwise SignalR's default: a negotiate
 * request, then the best transport, on the instance that answered it (so, behind several instances,
 * only with session affinity).
 */
function hubConnection(direct) {
  const hub = new signalR.HubConnectionBuilder()
    .withUrl(hubUrl, {
      accessTokenFactory: hubToken,
      ...(direct && { skipNegotiation: true, transport: signalR.HttpTransportType.WebSockets, WebSocket: ObservedWebSocket }),
    })
    .withAutomaticReconnect()
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  // A replaced connection (new keys) may still deliver its last messages: only the current one counts.
  const on = (handler) => (...args) => hub === connection && handler(...args);

  for (const name of UPSTREAM_EVENTS) {
    hub.on(name, on((...args) => restTarget?.event(name, args)));
  }

  // A REST prediction's stream, announced before its events and closed after them (for Resume).
  hub.on("gateway:stream", on((stream) => { if (restTarget) restTarget.streamId = stream?.streamId; }));
  hub.on("gateway:stream-end", on(() => {}));

  hub.on("gateway:upstream-lost", on((lost) => {
    notice("warn", `TROM.AI session lost (${lost?.reason ?? "no reason given"}); the gateway is reconnecting it.`, "gateway:upstream-lost");
    showState("upstream-lost", "TROM.AI lost");
  }));

  hub.on("gateway:upstream-restored", on((restored) => {
    notice("ok", `TROM.AI session restored after ${restored?.attempts ?? "?"} attempt(s), ${restored?.downtimeMs ?? "?"} ms down.`, "gateway:upstream-restored");
    showState("connected");
  }));

  hub.onreconnecting(on((error) => {
    forgetId();
    notice("warn", `Connection lost${error ? ` (${error.message})` : ""}; reconnecting…`, "reconnecting");
    showState("reconnecting");
  }));

  hub.onreconnected(on(async () => {
    // A new connection: a new id and a new upstream session.
    try {
      await identify(hub);
      notice("ok", "Reconnected, with a new id.", "reconnected");
      showState("connected");
    } catch (error) {
      notice("error", `Reconnected, but cannot get the new id: ${error.message}`, "reconnected");
    }
  }));

  hub.onclose(on((error) => {
    forgetId();
    notice("error", `Disconnected${error ? `: ${error.message}` : "."}`, "closed");
    showState("disconnected");
  }));
  return hub;
}

/** The latest connect() wins: new keys while one is still connecting replace it. */
let connecting = 0;

/**
 * Opens the hub connection with the current keys: directly over WebSockets, else (the browser has no
 * WebSockets, or its WebSocket never opened, e.g. a proxy that refuses them) with negotiation.
 */
async function connect() {
  const attempt = ++connecting;
  const previous = connection;
  connection = null;
  forgetId();
  ui.transport.textContent = "";
  showState("connecting");
  await previous?.stop();

  let directError = null;
  for (const direct of ObservedWebSocket ? [true, false] : [false]) {
    if (attempt !== connecting) return;
    const hub = hubConnection(direct);
    connection = hub;
    webSocketOpened = false;
    try {
      // Resolves once the gateway's upstream session is connected, so the first answer streams.
      await hub.start();
      await identify(hub);
    } catch (error) {
      if (attempt !== connecting) return;
      connection = null;
      // A WebSocket that opened and was then refused (say TROM.AI is unreachable): negotiating would be refused too.
      if (direct && !webSocketOpened) {
        directError = error;
        continue;
      }

      cannotConnect(error);
      return;
    }

    if (attempt !== connecting) return;
    ui.transport.textContent = direct ? "WebSockets, no negotiation" : "negotiated";
    ui.transport.dataset.negotiated = String(!direct);
    if (!direct) {
      notice("warn", `${directError ? "A WebSocket without negotiation did not open" : "This browser has no WebSockets"}, so the page negotiated: `
        + "behind several gateway instances that needs session affinity (README, \"Sticky sessions\").", "negotiated");
    }
    notice("ok", "Connected to the gateway.", "connected");
    showState("connected");
    resumeAfterReload();
    return;
  }
}

function cannotConnect(error) {
  // SignalR keeps only the text of the negotiate request's status.
  if (/Status code '401'/.test(error.message)) {
    ui.keys.open = true;
    notice("error", "The gateway wants a credential (its authentication is on): enter a gateway key under Keys.", "closed");
  } else {
    notice("error", `Cannot connect: ${error.message}`, "closed");
  }
  showState("disconnected");
}

// ----- Asking -------------------------------------------------------------------------------------

/** A chat id the page knows, so it can abort a prediction it asked over REST. crypto.randomUUID needs https. */
function newChatId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

async function answerOf(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function askOverRest(turn, body) {
  restTarget = turn;
  try {
    const response = await fetch(predictionUrl(turn.chatflowId), {
      method: "POST",
      headers: { "Content-Type": "application/json", ...restHeaders() },
      body: JSON.stringify({ ...body, socketIOClientId }),
    });
    const answer = await answerOf(response);
    if (!response.ok) {
      turn.fail(`TROM.AI answered ${reasonOf(response, answer)}`);
      return;
    }
    turn.finish();
  } catch (error) {
    turn.fail(`The prediction request failed: ${error.message}`);
  }
}

/** Where a running Predict is, kept across a reload of the page (README, "Resumable answers"). */
const RESUME_KEY = "playground.resume";

function askOverPredict(turn, body) {
  restTarget = null; // while a Predict runs, the connection's events go into its stream
  readStream(turn, connection.stream("Predict", turn.chatflowId, body), body.question);
}

/**
 * Reads a Predict or Resume stream into its turn. The header names the stream; each item's seq is
 * saved with it, so that a reload mid-answer resumes the stream instead of losing the answer.
 */
function readStream(turn, stream, question) {
  const save = (seq) => sessionStorage.setItem(RESUME_KEY, JSON.stringify({
    streamId: turn.streamId, seq, chatflowId: turn.chatflowId, chatId: turn.chatId, question,
  }));
  const over = () => sessionStorage.removeItem(RESUME_KEY);
  turn.subscription = stream.subscribe({
    next: ({ event, data, seq }) => {
      // The header is the gateway's, not the flow's: it names the stream to resume.
      if (event === "gateway:stream") {
        turn.streamId = data?.streamId;
        save(0);
        return;
      }

      if (turn.settled) return;
      save(seq);
      if (event === "result") {
        over();
        turn.finish();
      } else turn.event(event, data === null ? [] : [data]);
    },
    error: (error) => { over(); turn.fail(error.message); },
    complete: () => { over(); turn.finish(); },
  });
}

/**
 * The page was reloaded while a Predict streamed: its prediction ran on in the gateway. A fresh
 * page has none of the answer yet, so it resumes the stream from its start (afterSeq 0): every
 * token once, in order, and then the live rest.
 */
function resumeAfterReload() {
  const saved = JSON.parse(sessionStorage.getItem(RESUME_KEY) ?? "null");
  if (!saved?.streamId || current) return;
  const turn = new Turn({ chatflowId: saved.chatflowId, question: saved.question, mode: "predict", chatId: saved.chatId });
  turn.streamId = saved.streamId;
  turn.node.dataset.resumed = "true";
  current = turn;
  updateControls();
  notice("ok", `Resuming the answer that was streaming before the reload (it had reached item ${saved.seq}).`, "resumed");
  readStream(turn, connection.stream("Resume", saved.streamId, 0), saved.question);
}

async function abort() {
  const turn = current;
  if (!turn || turn.settled) return;
  turn.abortRequested = true;
  updateControls();
  if (turn.mode === "predict") {
    // Disposing the subscription makes the gateway abort the prediction upstream and end the stream.
    // A resumed one only stops reading: it was asked by the page before the reload, so abort it by its chat id.
    sessionStorage.removeItem(RESUME_KEY);
    turn.subscription.dispose();
    if (turn.node.dataset.resumed) connection.invoke("Abort", turn.chatflowId, turn.chatId).catch(() => {});
    turn.finish();
    return;
  }

  turn.setStatus("aborting", "aborting…");
  try {
    // TROM.AI then sends `abort`, and the POST answers with the text so far.
    await connection.invoke("Abort", turn.chatflowId, turn.chatId);
  } catch (error) {
    notice("error", `Abort failed: ${error.message}`, "abort-failed");
  }
}

ui.form.addEventListener("submit", (e) => {
  e.preventDefault();
  if (current || connection?.state !== signalR.HubConnectionState.Connected) return;
  const chatflowId = ui.chatflow.value.trim();
  const question = ui.question.value;
  if (!chatflowId || !question.trim()) return;

  let overrideConfig;
  ui.formError.hidden = true;
  if (ui.overrideConfig.value.trim()) {
    try {
      overrideConfig = JSON.parse(ui.overrideConfig.value);
    } catch (error) {
      ui.formError.textContent = `overrideConfig is not JSON: ${error.message}`;
      ui.formError.hidden = false;
      ui.overrideConfig.closest("details").open = true;
      return;
    }
  }

  const mode = ui.form.elements.mode.value;
  const body = { question, chatId: newChatId(), ...(overrideConfig !== undefined && { overrideConfig }) };
  const turn = new Turn({ chatflowId, question, mode, chatId: body.chatId });
  turn.question = question;
  current = turn;
  updateControls();
  ui.question.value = "";
  localStorage.setItem("playground.chatflow", chatflowId);
  if (mode === "rest") {
    askOverRest(turn, body);
    return;
  }

  askOverPredict(turn, body);
});

ui.question.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    ui.form.requestSubmit();
  }
});

ui.abort.addEventListener("click", abort);
ui.reconnect.addEventListener("click", connect);
ui.keysForm.addEventListener("submit", (e) => {
  e.preventDefault();
  if (!current) useKeys();
});
ui.chatflowList.addEventListener("change", () => {
  if (ui.chatflowList.value) ui.chatflow.value = ui.chatflowList.value;
  else ui.chatflow.focus();
  showChosen();
});
ui.chatflow.addEventListener("input", showChosen);

// ?chatflow=<id> chooses one (the README's first steps use ?chatflow=demo), else the last one asked.
ui.chatflow.value = new URLSearchParams(location.search).get("chatflow") ?? localStorage.getItem("playground.chatflow") ?? "";
showKeys();
await Promise.all([listChatflows(), connect()]);
