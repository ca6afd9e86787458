// Test upstream that behaves like TROM.AI 1.x / 2.0 (the Socket.IO era of Flowise), 2.2.5+ or 3.x
// (the SSE era), for the gateway's tests and as a stand-in for a newcomer without a TROM.AI of their
// own. See README.md beside this file and /work/shared/tromai-protocol.md.
//
// One http server carries both express (the REST API, the test controls and a web UI stand-in)
// and the real socket.io 4.8 server at its default path /socket.io/ (polling + websocket, no
// namespace, no connection handler, no auth, CORS origin *), like the upstream.
//
// stdout carries exactly one line per successful listen: `LISTENING <port>`. Anything else goes
// to stderr.
//
// STREAMING=sse makes it an SSE-era upstream instead (2.2.5+, protocol section 2): no socket.io at
// all (/socket.io/ then answers the web UI), and predictions with `streaming: true` answer
// text/event-stream. STREAMING=socketio (or unset) is the Socket.IO era above.
//
// TROMAI_VERSION=3 makes it a 3.x upstream (protocol section 2 "3.x", as 3.1.4 behaves): SSE as above
// plus API keys per chatflow, periodic `:heartbeat` comments, a slow `metadata`/`end`, an Agentflow V2
// chatflow, and admin endpoints that want a key.

import http from "node:http";
import crypto from "node:crypto";
import fs from "node:fs";
import { performance } from "node:perf_hooks";
import { setImmediate as yieldToEventLoop, setTimeout as sleep } from "node:timers/promises";
import express from "express";
import multer from "multer";
import { Server as SocketIOServer } from "socket.io";

const HOST = process.env.HOST || "127.0.0.1";
let port = Number(process.env.PORT || 0); // 0 = ephemeral; after the first listen it is the real port

// Optional Engine.IO heartbeat settings (Socket.IO defaults: 25000 / 20000 ms).
const PING_INTERVAL = Number(process.env.SIO_PING_INTERVAL || 25000);
const PING_TIMEOUT = Number(process.env.SIO_PING_TIMEOUT || 20000);

const TROMAI_VERSION = process.env.TROMAI_VERSION || "";
if (TROMAI_VERSION !== "" && TROMAI_VERSION !== "3") {
  console.error(`TROMAI_VERSION must be 3 or unset, not ${TROMAI_VERSION}`);
  process.exit(2);
}
/** TROM.AI 3.x (checked against 3.1.4): SSE only, with its keys, heartbeats, Agentflow V2 and slow metadata. */
const V3 = TROMAI_VERSION === "3";

const STREAMING = process.env.STREAMING || (V3 ? "sse" : "socketio");
if (STREAMING !== "socketio" && STREAMING !== "sse") {
  console.error(`STREAMING must be socketio or sse, not ${STREAMING}`);
  process.exit(2);
}
if (V3 && STREAMING !== "sse") {
  console.error("TROMAI_VERSION=3 has no Socket.IO: leave STREAMING unset or set it to sse");
  process.exit(2);
}
const SSE_MODE = STREAMING === "sse";

/** A non-negative number of milliseconds from the environment, or exit 2 naming the variable. */
function envMs(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms < 0) {
    console.error(`${name} must be a number of milliseconds >= 0, not ${raw}`);
    process.exit(2);
  }
  return ms;
}

/** `a,b` as a list of non-empty strings. */
const list = (raw) => (raw || "").split(",").map((s) => s.trim()).filter((s) => s !== "");

/**
 * What a test may change while the upstream runs (PUT /test/config); the environment sets the start
 * values. Only TROMAI_VERSION=3 uses it: earlier modes ignore keys, heartbeats and the metadata delay.
 */
const config = {
  /** API keys the admin endpoints accept (3.x keys carry permissions; these have them all). */
  apiKeys: list(process.env.API_KEYS),
  /** Chatflow id -> the API key assigned to it; a prediction must then present it. */
  chatflowKeys: Object.fromEntries(
    list(process.env.CHATFLOW_KEYS).map((pair) => {
      const at = pair.indexOf("=");
      if (at <= 0 || at === pair.length - 1) {
        console.error(`CHATFLOW_KEYS wants chatflowId=key pairs separated by commas, not ${pair}`);
        process.exit(2);
      }
      return [pair.slice(0, at), pair.slice(at + 1)];
    }),
  ),
  /** Period of the `:heartbeat` comment on every open stream (3.1.2+ sends one every 30 s). */
  heartbeatMs: envMs("HEARTBEAT_MS", 30000),
  /** How long a 3.x flow takes between its last event and `metadata`/`end` (token usage estimation). */
  metadataDelayMs: envMs("METADATA_DELAY_MS", 0),
};

const ALL_EVENTS = JSON.parse(fs.readFileSync(new URL("./all-events.json", import.meta.url), "utf8"));

/** The chatflows, as GET /api/v1/chatflows lists them. Agentflow V2 exists from 3.0 on. */
const CHATFLOWS = [
  { id: "all-events", name: "All events", type: "CHATFLOW" },
  { id: "tokens", name: "Tokens", type: "CHATFLOW" },
  { id: "error", name: "Error", type: "CHATFLOW" },
  { id: "echo-question", name: "Echo the question", type: "CHATFLOW" },
  { id: "not-streamable", name: "Not streamable", type: "CHATFLOW" },
  { id: "demo", name: "Demo: a streamed answer", type: "CHATFLOW" },
  ...(V3 ? [{ id: "agentflow", name: "Agentflow V2", type: "AGENTFLOW" }] : []),
];
const KNOWN_CHATFLOWS = new Set(CHATFLOWS.map((c) => c.id));
/** Chatflows that cannot stream: they answer JSON even when asked to stream, as the upstream does. */
const NOT_STREAMABLE = new Set(["not-streamable"]);
const STARTED_AT = new Date().toISOString();

// ---------------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------------

/** The current socket.io server; replaced by /test/restart, so always read it at emit time. */
let io = null;
/** The current http server and the raw TCP connections it holds (destroyed on restart). */
let httpServer = null;
let connections = new Set();
let restarting = false;

/** Log of every request under /api/ (capped at 1000, oldest dropped first). */
const LOG_CAP = 1000;
const requestLog = [];

/** Epoch ms until which predictions neither emit nor answer (POST /test/stall). */
let stallUntil = 0;

/** Running `tokens` predictions by `${chatflowId}/${chatId}`, for the abort endpoint. */
const running = new Map();

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/** Error answer in the upstream's format. */
function sendError(res, statusCode, message) {
  if (res.headersSent || res.destroyed) return;
  // 3.x outside development mode sends an empty object for the stack.
  res.status(statusCode).json({ statusCode, success: false, message, stack: V3 ? {} : "" });
}

/** Resolves once no stall is in force (a stall may be extended while we wait, hence the loop). */
async function waitWhileStalled() {
  for (let left = stallUntil - Date.now(); left > 0; left = stallUntil - Date.now()) {
    await sleep(Math.min(left, 50));
  }
}
const isStalled = () => Date.now() < stallUntil;

/** Deep copy of an all-events.json value where every {"$binary": base64} becomes a Buffer. */
function reviveBinary(value) {
  if (Array.isArray(value)) return value.map(reviveBinary);
  if (value && typeof value === "object") {
    if (typeof value.$binary === "string" && Object.keys(value).length === 1) {
      return Buffer.from(value.$binary, "base64");
    }
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = reviveBinary(v);
    return out;
  }
  return value;
}

/** Plain copy of a parsed body (multer and qs may hand out null-prototype objects). */
function plainBody(body) {
  if (body === undefined || body === null) return null;
  if (typeof body !== "object" || Buffer.isBuffer(body)) return null;
  return JSON.parse(JSON.stringify(body));
}

// ---------------------------------------------------------------------------------------------
// Express app (stable across restarts; only the http + socket.io servers are recreated)
// ---------------------------------------------------------------------------------------------

const app = express();
app.disable("x-powered-by");
app.set("etag", false);

// Request log: the entry is recorded when the request arrives (so even requests whose body fails
// to parse show up) and its body/files are filled in once the parsers below have run.
app.use("/api", (req, res, next) => {
  const entry = { method: req.method, path: req.originalUrl, headers: { ...req.headers }, body: null, files: [] };
  requestLog.push(entry);
  if (requestLog.length > LOG_CAP) requestLog.splice(0, requestLog.length - LOG_CAP);
  req.logEntry = entry;
  next();
});

// Echo: registered before the body parsers so the body arrives untouched, as raw bytes.
// `{/*rest}` (path-to-regexp 8) matches /api/v1/echo and everything below it.
app.all(
  "/api/v1/echo{/*rest}",
  express.raw({ type: () => true, limit: "100mb" }),
  (req, res) => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const status = Number(req.query.status);
    if (Number.isInteger(status) && status >= 100 && status <= 999) res.status(status);
    res.json({ method: req.method, path: req.originalUrl, headers: req.headers, bodyBase64: body.toString("base64") });
  },
);

// Body parsers for the rest of the API, like the upstream: JSON and urlencoded up to 100mb, and
// multipart with every file kept in memory (multer ignores requests that are not multipart).
const upload = multer({ storage: multer.memoryStorage(), limits: { fileSize: 100 * 1024 * 1024 } });
app.use("/api", express.json({ limit: "100mb" }));
app.use("/api", express.urlencoded({ limit: "100mb", extended: true }));
app.use("/api", upload.any());
app.use("/api", (req, res, next) => {
  req.logEntry.body = plainBody(req.body);
  req.logEntry.files = (req.files || []).map((f) => ({
    fieldname: f.fieldname,
    originalname: f.originalname,
    size: f.size,
    sha256hex: crypto.createHash("sha256").update(f.buffer).digest("hex"),
  }));
  next();
});

// ----- Test controls ---------------------------------------------------------------------------

app.get("/test/requests", (req, res) => res.json(requestLog));
app.delete("/test/requests", (req, res) => {
  requestLog.length = 0;
  res.json({ cleared: true });
});

app.get("/test/sockets", (req, res) => {
  const ids = io ? [...io.of("/").sockets.keys()] : [];
  res.json({ count: ids.length, ids });
});

app.post("/test/drop-sockets", (req, res) => {
  const sockets = io ? [...io.of("/").sockets.values()] : [];
  // disconnect(true) closes the underlying connection too. Note: a socket.io client treats this
  // as "io server disconnect" and does NOT reconnect by itself.
  for (const s of sockets) s.disconnect(true);
  res.json({ dropped: sockets.length });
});

app.post("/test/restart", (req, res) => {
  const downMs = req.query.downMs !== undefined ? Math.max(0, Number(req.query.downMs) || 0) : 500;
  if (restarting) return res.status(409).json({ ok: false, message: "restart already in progress" });
  restarting = true;
  // Answer first; the restart starts once this response has been handed to the socket.
  res.on("finish", () => {
    restart(downMs).catch((err) => {
      console.error("restart failed:", err);
      process.exit(1);
    });
  });
  res.json({ ok: true });
});

// Writes a frame no Socket.IO client can parse (an event whose JSON is cut short) to every socket.
app.post("/test/malformed-frame", (req, res) => {
  const sockets = io ? [...io.of("/").sockets.values()] : [];
  for (const s of sockets) s.conn.write('2["token",');
  res.json({ sent: sockets.length });
});

app.post("/test/stall", (req, res) => {
  const ms = Math.max(0, Number(req.query.ms) || 0);
  stallUntil = Date.now() + ms;
  res.json({ ok: true, stallUntil });
});

/** The 3.x settings above, plus how many heartbeats went out so far. */
const configView = () => ({ ...config, heartbeatsSent });

app.get("/test/config", (req, res) => res.json(configView()));

// The clock the token stamps are read from, for a bench to measure its offset from its own.
app.get("/test/clock", (req, res) => res.json({ now: performance.timeOrigin + performance.now() }));

// Changes the members given and leaves the others; chatflowKeys replaces the whole assignment.
app.put("/test/config", express.json(), (req, res) => {
  const patch = req.body && typeof req.body === "object" ? req.body : {};
  const bad = (message) => res.status(400).json({ ok: false, message });
  if (patch.apiKeys !== undefined) {
    if (!Array.isArray(patch.apiKeys) || !patch.apiKeys.every((k) => typeof k === "string" && k !== "")) {
      return bad("apiKeys must be an array of non-empty strings");
    }
  }
  if (patch.chatflowKeys !== undefined) {
    const keys = patch.chatflowKeys;
    if (!keys || typeof keys !== "object" || Array.isArray(keys) || !Object.values(keys).every((k) => typeof k === "string" && k !== "")) {
      return bad("chatflowKeys must map chatflow ids to non-empty strings");
    }
  }
  for (const name of ["heartbeatMs", "metadataDelayMs"]) {
    if (patch[name] !== undefined && !(typeof patch[name] === "number" && Number.isFinite(patch[name]) && patch[name] >= 0)) {
      return bad(`${name} must be a number of milliseconds >= 0`);
    }
  }
  if (patch.apiKeys !== undefined) config.apiKeys = [...patch.apiKeys];
  if (patch.chatflowKeys !== undefined) config.chatflowKeys = { ...patch.chatflowKeys };
  if (patch.metadataDelayMs !== undefined) config.metadataDelayMs = patch.metadataDelayMs;
  if (patch.heartbeatMs !== undefined && patch.heartbeatMs !== config.heartbeatMs) {
    config.heartbeatMs = patch.heartbeatMs;
    startHeartbeat();
  }
  res.json(configView());
});

// ----- TROM.AI API ---------------------------------------------------------------------------

app.get("/api/v1/ping", (req, res) => res.status(200).send("pong"));

/** 3.x: the admin API wants an API key (`Authorization: Bearer`) or the web UI's `x-request-from: internal`. */
function adminAllowed(req) {
  if (!V3) return true;
  if (req.headers["x-request-from"] === "internal") return true;
  const key = bearerKey(req);
  return key !== null && (config.apiKeys.includes(key) || Object.values(config.chatflowKeys).includes(key));
}

/** The key of `Authorization: Bearer <key>`, or null. */
function bearerKey(req) {
  const header = req.headers.authorization;
  if (typeof header !== "string" || !header.startsWith("Bearer ")) return null;
  return header.slice("Bearer ".length).trim() || null;
}

/** 3.x: a chatflow with an assigned key answers only a request that presents that key. */
const predictionAllowed = (req, chatflowId) => !V3 || !config.chatflowKeys[chatflowId] || bearerKey(req) === config.chatflowKeys[chatflowId];

app.get("/api/v1/chatflows", (req, res) => {
  // 3.x's own answer to a request without credentials (its auth middleware, not the error handler).
  if (!adminAllowed(req)) return res.status(401).json({ error: "Unauthorized Access" });
  const type = typeof req.query.type === "string" ? req.query.type : null;
  res.json(
    CHATFLOWS.filter((c) => type === null || c.type === type).map((c) => ({
      id: c.id,
      name: c.name,
      flowData: JSON.stringify({ nodes: [], edges: [] }),
      deployed: false,
      isPublic: false,
      apikeyid: V3 && config.chatflowKeys[c.id] ? `apikey-${crypto.createHash("sha256").update(config.chatflowKeys[c.id]).digest("hex").slice(0, 12)}` : null,
      chatbotConfig: null,
      category: null,
      type: c.type,
      createdDate: STARTED_AT,
      updatedDate: STARTED_AT,
    })),
  );
});

app.get("/api/v1/chatflows-streaming/:id", (req, res) => {
  if (!KNOWN_CHATFLOWS.has(req.params.id)) return sendError(res, 404, `Chatflow ${req.params.id} not found`);
  res.json({ isStreaming: !NOT_STREAMABLE.has(req.params.id) });
});

app.put("/api/v1/chatmessage/abort/:chatflowid/:chatid", (req, res) => {
  const preds = running.get(`${req.params.chatflowid}/${req.params.chatid}`);
  // The prediction notices the flag itself, emits `abort` and answers (respecting a stall).
  if (preds) {
    for (const p of preds) {
      p.aborted = true;
      p.wake?.();
    }
  }
  res.json({ message: "Prediction aborted", aborted: preds ? preds.size : 0 });
});

app.post("/api/v1/prediction/:id", async (req, res, next) => {
  try {
    await prediction(req, res);
  } catch (err) {
    next(err);
  }
});

async function prediction(req, res) {
  const chatflowId = req.params.id;
  await waitWhileStalled();

  if (!KNOWN_CHATFLOWS.has(chatflowId)) return sendError(res, 404, `Chatflow ${chatflowId} not found`);

  const body = req.body && typeof req.body === "object" ? req.body : {};
  const question = body.question;
  const socketIOClientId = body.socketIOClientId;
  const chatId = typeof body.chatId === "string" && body.chatId !== "" ? body.chatId : crypto.randomUUID();

  // In multipart, overrideConfig arrives as a JSON string field.
  let overrideConfig = body.overrideConfig ?? {};
  if (typeof overrideConfig === "string") {
    try {
      overrideConfig = JSON.parse(overrideConfig);
    } catch {
      return sendError(res, 500, "overrideConfig is not valid JSON");
    }
  }
  if (!overrideConfig || typeof overrideConfig !== "object") overrideConfig = {};

  // SSE era: the answer itself is the stream, when asked for and the flow can stream.
  const streamed = SSE_MODE && wantsStreaming(body) && !NOT_STREAMABLE.has(chatflowId);

  // 3.x checks the key inside the flow's build, after the stream has started: a streaming call gets
  // 200 with an `error` event, a plain one the 500 its service layer wraps every failure in.
  if (!predictionAllowed(req, chatflowId)) {
    if (streamed) return sseFailure(res, flowError("Unauthorized"));
    return sendError(res, 500, flowError("Unauthorized"));
  }

  if (streamed) return ssePrediction(res, { chatflowId, chatId, question, overrideConfig });

  if (chatflowId === "error") return sendError(res, 500, flowError("Flow failed: boom"));

  // The upstream fails with a 500 when the body was not parsed (e.g. JSON sent without
  // `Content-Type: application/json`): the question is then undefined.
  if (typeof question !== "string") {
    return sendError(res, 500, flowError("question is missing (was the body sent with Content-Type: application/json?)"));
  }

  if (chatflowId === "agentflow") {
    const run = runAgentflow({ question, emit: () => {} });
    await slowMetadata(overrideConfig);
    if (res.destroyed || res.headersSent) return;
    // 3.1.4's executeAgentFlow answer: no memoryType, no isStreamValid; the executed data without credential ids.
    return res.json({
      text: run.text,
      question,
      chatId,
      chatMessageId: crypto.randomUUID(),
      followUpPrompts: JSON.stringify(JSON.stringify(AGENTFLOW_FOLLOW_UP_PROMPTS)),
      executionId: crypto.randomUUID(),
      agentFlowExecutedData: withoutCredentialIds(run.executedData),
      sessionId: chatId,
    });
  }

  // Like the upstream: io.to(id).emit(...), an unknown id is silently dropped. Read `io` at emit
  // time since /test/restart replaces it.
  const streaming = typeof socketIOClientId === "string" && socketIOClientId !== "";
  const emit = streaming ? (name, ...args) => io && io.to(socketIOClientId).emit(name, ...args) : () => {};

  let text;
  const extras = {};
  switch (chatflowId) {
    case "all-events": {
      const events = ALL_EVENTS.events.map((e) => ({ event: e.event, args: reviveBinary(e.args) }));
      for (const e of events) emit(e.event, ...e.args);
      text = ALL_EVENTS.answer;
      break;
    }
    case "echo-question":
      emit("token", question);
      emit("end");
      text = question;
      break;
    case "tokens":
      text = await runTokens({ chatflowId, chatId, question, overrideConfig, emit });
      break;
    case "demo": {
      const run = await runDemo({ chatId, question, overrideConfig, emit });
      text = run.text;
      if (!run.aborted) extras.sourceDocuments = DEMO_SOURCE_DOCUMENTS;
      break;
    }
    case "not-streamable":
      text = question; // never emits, whoever asks
      break;
  }

  await waitWhileStalled();
  await slowMetadata(overrideConfig);
  if (res.destroyed || res.headersSent) return; // client went away (or the server restarted)
  res.json(
    V3
      ? // 3.1.4's answer for a chatflow: the ending node's own members, then what buildChatflow adds.
        { text, ...extras, question, chatId, chatMessageId: crypto.randomUUID(), isStreamValid: false, sessionId: chatId, memoryType: "Buffer Memory" }
      : { text, question, chatId, chatMessageId: crypto.randomUUID(), sessionId: chatId, ...extras },
  );
}

/** 3.x wraps every failure of a prediction in its service layer's name. */
const flowError = (message) => (V3 ? `Error: predictionsServices.buildChatflow - ${message}` : message);

/**
 * 3.x: the time a flow takes after its last event before it answers (it estimates token usage,
 * retrying when that fails): METADATA_DELAY_MS, then, with `overrideConfig.holdMetadata` = KEY, until
 * POST /test/release/KEY. The hold is in place before this returns control, so a client that saw the
 * flow's last event can release it without a race.
 */
async function slowMetadata(overrideConfig) {
  if (!V3) return;
  const key = typeof overrideConfig.holdMetadata === "string" && overrideConfig.holdMetadata !== "" ? overrideConfig.holdMetadata : null;
  const held = key ? new Promise((resolve) => gates.set(key, resolve)) : null;
  if (config.metadataDelayMs > 0) await sleep(config.metadataDelayMs);
  if (held) await held;
}

/**
 * The `tokens` chatflow. Token i is `${question}:${i}` (or `${question}:${i}:${epochMs}` with
 * stamp). `start` carries token 0's string (the same string token 0 then carries), then every
 * token in order, then `end`. Returns the text: the emitted tokens joined. On abort: stops, emits
 * `abort` (no `end`), and returns what was emitted so far.
 */
async function runTokens({ chatflowId, chatId, question, overrideConfig, emit }) {
  const { text, aborted } = await streamTokens({ chatflowId, chatId, ...tokensOptions(question, overrideConfig), emit });
  if (!aborted) {
    await waitWhileStalled();
    emit("end");
  }
  return text;
}

/** The `tokens` chatflow's `count`, `rate` and token strings, from its overrideConfig. */
function tokensOptions(question, overrideConfig) {
  const count = overrideConfig.count !== undefined ? Math.max(0, Math.floor(Number(overrideConfig.count) || 0)) : 100;
  const rate = Math.max(0, Number(overrideConfig.rate) || 0);
  const stamp = overrideConfig.stamp === true || overrideConfig.stamp === "true";
  const make = (i) => (stamp ? `${question}:${i}:${performance.timeOrigin + performance.now()}` : `${question}:${i}`);
  return { count, rate, make };
}

/** The `demo` chatflow's answer: a few sentences a newcomer can watch arrive, one word a token. */
const demoText = (question) =>
  `Hello! This answer comes from the gateway's test upstream, standing in for TROM.AI. ` +
  `You asked: "${question}". Each word you see arrived as its own token event: the stand-in emitted it, ` +
  `the gateway relayed it to your SignalR connection, in order, and the page appended it. ` +
  `When this answer is complete, the sources it cites arrive as one sourceDocuments event. ` +
  `To get real answers, point Gateway:Upstream:BaseUrl at your TROM.AI.`;

const DEMO_SOURCE_DOCUMENTS = [
  { pageContent: "Each SignalR connection owns one upstream session; every event reaches it in order, exactly once.", metadata: { source: "README.md", section: "TROM.AI Gateway" } },
  { pageContent: "The hub's Predict streams {event, data} for every upstream event and ends with the answer.", metadata: { source: "README.md", section: "One call: hub Predict" } },
];

/**
 * The `demo` chatflow: `start`, the answer's words as `token`s at overrideConfig.rate per second
 * (default 30, a human reading pace), then `sourceDocuments` and `end`. Abort works as for `tokens`.
 */
async function runDemo({ chatId, question, overrideConfig, emit }) {
  const words = demoText(question).match(/\S+\s*/g);
  const rate = overrideConfig.rate !== undefined ? Math.max(0, Number(overrideConfig.rate) || 0) : 30;
  const run = await streamTokens({ chatflowId: "demo", chatId, count: words.length, rate, make: (i) => words[i], emit });
  if (!run.aborted) {
    await waitWhileStalled();
    emit("sourceDocuments", DEMO_SOURCE_DOCUMENTS);
    emit("end");
  }
  return run;
}

/**
 * Emits `start` (token 0's string), then `count` tokens `make(i)` in order, at `rate` tokens/s (0 =
 * as fast as possible), registered for the abort endpoint under `${chatflowId}/${chatId}`. Returns
 * `{text, aborted}`: the emitted tokens joined, and whether an abort stopped it (it then emitted
 * `abort`).
 */
async function streamTokens({ chatflowId, chatId, count, rate, make, emit }) {
  const key = `${chatflowId}/${chatId}`;
  const state = { aborted: false, wake: null };
  if (!running.has(key)) running.set(key, new Set());
  running.get(key).add(state);

  const emitted = [];
  let first = null; // token 0's string, fixed when `start` is emitted
  const emitToken = () => {
    const i = emitted.length;
    const t = i === 0 ? first : make(i);
    emit("token", t);
    emitted.push(t);
  };

  try {
    await waitWhileStalled();
    if (state.aborted) return finishAborted();
    first = count > 0 ? make(0) : "";
    emit("start", first);

    const BATCH = 500; // at most this many emits without yielding to the event loop
    if (rate === 0) {
      // As fast as possible, yielding every BATCH tokens so aborts, stalls and other requests
      // get a turn.
      while (emitted.length < count) {
        if (state.aborted) return finishAborted();
        if (isStalled()) {
          await waitWhileStalled();
          continue;
        }
        const stop = Math.min(count, emitted.length + BATCH);
        while (emitted.length < stop) emitToken();
        if (emitted.length < count) await yieldToEventLoop();
      }
    } else {
      // Scheduled by elapsed time: token i is due at t0 + i/rate. Each wake-up emits every due
      // token, so rates far above the timer resolution are honoured. Tokens held back by a stall
      // are emitted (in a burst) once it ends.
      const t0 = performance.now();
      const period = 1000 / rate;
      while (emitted.length < count) {
        if (state.aborted) return finishAborted();
        if (isStalled()) {
          await waitWhileStalled();
          continue;
        }
        const due = Math.min(count, Math.floor((performance.now() - t0) / period) + 1);
        const stop = Math.min(due, emitted.length + BATCH);
        while (emitted.length < stop) emitToken();
        if (emitted.length >= count) break;
        if (emitted.length < due) {
          await yieldToEventLoop(); // still behind: catch up after letting others run
        } else {
          // Sleep until the next token is due: thousands of slow streams then wake Node once per token, not
          // every 10 ms each (which saturated it at ~10k streams of 1 token/s). An abort wakes it at once.
          const nextDue = t0 + emitted.length * period - performance.now();
          await new Promise((resolve) => {
            const timer = setTimeout(resolve, Math.max(1, nextDue));
            state.wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          state.wake = null;
        }
      }
    }
    if (state.aborted) return finishAborted();
    return { text: emitted.join(""), aborted: false };
  } finally {
    const set = running.get(key);
    set.delete(state);
    if (set.size === 0) running.delete(key);
  }

  async function finishAborted() {
    await waitWhileStalled();
    emit("abort");
    return { text: emitted.join(""), aborted: true };
  }
}

// ---------------------------------------------------------------------------------------------
// Agentflow V2 (TROMAI_VERSION=3): Start -> Agent, the agent calling a tool and citing a document
// ---------------------------------------------------------------------------------------------

const AGENTFLOW_FOLLOW_UP_PROMPTS = ["Why 42?", "Which tool did you use?"];

/**
 * Runs the `agentflow` chatflow as 3.1.4's executeAgentFlow streams it: `agentFlowEvent` INPROGRESS,
 * per node `nextAgentFlow` INPROGRESS / FINISHED and the whole `agentFlowExecutedData` so far, the
 * agent's `calledTools`, `usedTools`, `sourceDocuments`, tokens (no `start`: agent nodes send none) and
 * `usageMetadata`, then `agentFlowEvent` FINISHED. Returns `{text, executedData}`; the executed data
 * still holds the model's FLOWISE_CREDENTIAL_ID, as the stream does (the JSON answer drops it).
 */
function runAgentflow({ question, emit }) {
  const tokens = ["Agentflow", " V2", " looked", " that", " up", ": ", question, " = ", "42", "."];
  const text = tokens.join("");
  const usedTools = [{ tool: "calculator", toolInput: { expression: "6 * 7" }, toolOutput: "42" }];
  const sourceDocuments = [{ pageContent: "The answer is 42.", metadata: { source: "guide.md", page: 42 } }];
  const usageMetadata = { input_tokens: 21, output_tokens: tokens.length, total_tokens: 21 + tokens.length };
  const start = {
    nodeId: "startAgentflow_0",
    nodeLabel: "Start",
    data: { id: "startAgentflow_0", name: "startAgentflow", input: { question }, output: { question }, state: {} },
    previousNodeIds: [],
    status: "FINISHED",
  };
  const agent = {
    nodeId: "agentAgentflow_0",
    nodeLabel: "Agent 0",
    data: {
      id: "agentAgentflow_0",
      name: "agentAgentflow",
      input: {
        messages: [{ role: "user", content: question }],
        agentModel: "chatOpenAI",
        agentModelConfig: { modelName: "gpt-4o-mini", temperature: 0.9, FLOWISE_CREDENTIAL_ID: "4c1d0a4e-credential" },
      },
      output: { content: text, usedTools, sourceDocuments, usageMetadata },
      state: {},
      chatHistory: [{ role: "user", content: question }, { role: "assistant", content: text, name: "agent_0" }],
    },
    previousNodeIds: ["startAgentflow_0"],
    status: "FINISHED",
  };
  const step = (node) => ({ nodeId: node.nodeId, nodeLabel: node.nodeLabel });

  emit("agentFlowEvent", "INPROGRESS");
  emit("nextAgentFlow", { ...step(start), status: "INPROGRESS" });
  emit("nextAgentFlow", { ...step(start), status: "FINISHED" });
  emit("agentFlowExecutedData", [start]);
  emit("nextAgentFlow", { ...step(agent), status: "INPROGRESS" });
  emit("calledTools", [{ name: "calculator", args: { expression: "6 * 7" }, id: "call_0", type: "tool_call" }]);
  emit("usedTools", usedTools);
  emit("sourceDocuments", sourceDocuments);
  for (const t of tokens) emit("token", t);
  emit("usageMetadata", usageMetadata);
  emit("nextAgentFlow", { ...step(agent), status: "FINISHED" });
  emit("agentFlowExecutedData", [start, agent]);
  emit("agentFlowEvent", "FINISHED");
  return { text, executedData: [start, agent] };
}

/** A deep copy without FLOWISE_CREDENTIAL_ID members, as 3.x strips them from the answer's executed data. */
function withoutCredentialIds(value) {
  if (Array.isArray(value)) return value.map(withoutCredentialIds);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) if (k !== "FLOWISE_CREDENTIAL_ID") out[k] = withoutCredentialIds(v);
    return out;
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// SSE-era predictions (STREAMING=sse, body `streaming: true`)
// ---------------------------------------------------------------------------------------------

/** `streaming: true` as JSON, or the string "true" (multipart and urlencoded fields), as the upstream accepts. */
const wantsStreaming = (body) => body.streaming === true || body.streaming === "true";

/** Written with `message` without its colon, as 2.1.0 to 3.1.0 did (3.1.4 writes the colon everywhere). */
const SSE_LEGACY_MESSAGE = V3 ? new Set() : new Set(["end", "abort", "error"]);

/** One block of the upstream's wire format: `message:\ndata:{"event":...,"data":...}\n\n`. */
function sseBlock(event, data) {
  return `${SSE_LEGACY_MESSAGE.has(event) ? "message" : "message:"}\ndata:${JSON.stringify({ event, data })}\n\n`;
}

/** An all-events.json value as SSE JSON: a {"$binary": base64} (a Buffer in Socket.IO) becomes that base64 string, as the gateway relays an attachment. */
function sseValue(value) {
  if (Array.isArray(value)) return value.map(sseValue);
  if (value && typeof value === "object") {
    if (typeof value.$binary === "string" && Object.keys(value).length === 1) return value.$binary;
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = sseValue(v);
    return out;
  }
  return value;
}

/** Thrown by an SSE write once the client has gone, to stop the flow that was writing. */
const CLIENT_GONE = new Error("SSE client gone");

/** Open SSE prediction responses, which 3.x's heartbeat timer writes to. */
const openStreams = new Set();
let heartbeatsSent = 0;
let heartbeatTimer = null;

/** 3.1.2+: one timer for the whole server writes `:heartbeat` to every open stream (HEARTBEAT_MS). */
function startHeartbeat() {
  clearInterval(heartbeatTimer);
  heartbeatTimer = null;
  if (!V3 || config.heartbeatMs <= 0) return;
  heartbeatTimer = setInterval(() => {
    for (const res of openStreams) {
      if (res.destroyed || res.writableEnded) continue;
      res.write(":heartbeat\n\n");
      heartbeatsSent++;
    }
  }, config.heartbeatMs);
  heartbeatTimer.unref();
}
startHeartbeat();

/**
 * Starts an SSE answer: 200 text/event-stream, headers flushed at once. Returns `write(event, data)`
 * (throws CLIENT_GONE once the client has left) and `finish()`. Before 3.x one `:heartbeat` comment
 * follows the first block, so every client meets one; 3.x has its timer instead.
 */
function openSse(res) {
  res.status(200);
  res.setHeader("Content-Type", "text/event-stream");
  res.setHeader("Cache-Control", "no-cache");
  res.setHeader("Connection", "keep-alive");
  res.setHeader("X-Accel-Buffering", "no");
  res.flushHeaders();
  openStreams.add(res);
  res.on("close", () => openStreams.delete(res));

  let heartbeat = !V3;
  const write = (event, data) => {
    if (res.destroyed || res.writableEnded) throw CLIENT_GONE;
    res.write(sseBlock(event, data));
    if (heartbeat) {
      heartbeat = false;
      res.write(":heartbeat\n\n");
    }
  };
  const finish = () => {
    openStreams.delete(res);
    if (!res.destroyed && !res.writableEnded) res.end();
  };
  return { write, finish };
}

/** A streaming call that fails before its flow runs: 200, `error`, `end`, as the upstream answers it. */
function sseFailure(res, message) {
  const { write, finish } = openSse(res);
  try {
    write("error", message);
    write("end", "[DONE]");
  } catch (err) {
    if (err !== CLIENT_GONE) throw err;
  }
  finish();
}

/**
 * The SSE answer to a streaming prediction: 200 text/event-stream, the chatflow's events as blocks,
 * then `metadata` and `end` ("[DONE]"). Failures after the headers (the `error` chatflow, a missing
 * question) are an `error` event then `end`, as the upstream answers even an unauthorised streaming call.
 */
async function ssePrediction(res, { chatflowId, chatId, question, overrideConfig }) {
  const { write, finish } = openSse(res);
  try {
    if (chatflowId === "error" || typeof question !== "string") {
      write("error", flowError(chatflowId === "error" ? "Flow failed: boom" : "question is missing"));
      write("end", "[DONE]");
      return finish();
    }

    const metadata = { chatId, chatMessageId: crypto.randomUUID(), question, sessionId: chatId, memoryType: "Buffer Memory" };
    switch (chatflowId) {
      case "all-events":
        // An SSE event carries one value: entries with none (the file's end, abort, noArgs) or several
        // (brandNewEvent, numbers) have no SSE form and are left out; the stream's own end closes it.
        for (const e of ALL_EVENTS.events) if (e.args.length === 1) write(e.event, sseValue(e.args[0]));
        break;
      case "echo-question":
        write("token", question);
        break;
      case "tokens":
      case "demo": {
        // `end` is left to the stream's close below; `abort` ends the response there, as upstream.
        const emit = (name, ...args) => (name === "end" ? undefined : write(name, name === "abort" ? "[DONE]" : args[0]));
        const { aborted } =
          chatflowId === "demo"
            ? await runDemo({ chatId, question, overrideConfig, emit })
            : await streamTokens({ chatflowId, chatId, ...tokensOptions(question, overrideConfig), emit });
        if (aborted) return finish();
        break;
      }
      case "agentflow":
        runAgentflow({ question, emit: write });
        // An agentflow has no memory node, and its follow-up prompts travel as the JSON text 3.x stores.
        delete metadata.memoryType;
        metadata.followUpPrompts = JSON.stringify(AGENTFLOW_FOLLOW_UP_PROMPTS);
        break;
    }

    await waitWhileStalled();
    await slowMetadata(overrideConfig);
    write("metadata", metadata);
    write("end", "[DONE]");
    finish();
  } catch (err) {
    if (err !== CLIENT_GONE) throw err;
  }
}

// SSE sample: what the SSE-era upstream (2.1+) writes, for the gateway's proxy tests.
// With ?gate=KEY it writes the first block, then holds the rest until POST /test/release/KEY, so a
// test can prove the first block crossed a proxy while the response was still open.
app.get("/api/v1/sse", sse);

/** Open SSE gates by key: resolve functions waiting for POST /test/release/:key. */
const gates = new Map();
app.post("/test/release/:key", (req, res) => {
  const release = gates.get(req.params.key);
  gates.delete(req.params.key);
  if (release) release();
  res.json({ released: Boolean(release) });
});

function sse(req, res) {
  const count = req.query.count !== undefined ? Math.max(0, Math.floor(Number(req.query.count) || 0)) : 10;
  const intervalMs = req.query.intervalMs !== undefined ? Math.max(0, Number(req.query.intervalMs) || 0) : 100;
  res.status(200);
  res.setHeader("Content-Type", "text/event-stream");
  res.setHeader("Cache-Control", "no-cache");
  res.setHeader("Connection", "keep-alive");
  res.setHeader("X-Accel-Buffering", "no");
  res.flushHeaders();

  let i = 0;
  let timer = null;
  const gate = req.query.gate ? String(req.query.gate) : null;
  const tick = () => {
    if (res.destroyed) return;
    if (i < count) {
      res.write(`message:\ndata:${JSON.stringify({ event: "token", data: String(i) })}\n\n`);
      i++;
      if (i === 1 && gate) {
        gates.set(gate, () => { timer = setTimeout(tick, intervalMs); });
        return;
      }
      timer = setTimeout(tick, intervalMs);
    } else {
      res.end(`message:\ndata:${JSON.stringify({ event: "end", data: "[DONE]" })}\n\n`);
    }
  };
  res.on("close", () => clearTimeout(timer));
  timer = setTimeout(tick, intervalMs);
}

// Unknown API routes: JSON 404 in the upstream's error format.
app.use("/api", (req, res) => sendError(res, 404, `Cannot ${req.method} ${req.originalUrl}`));

// ----- Web UI stand-in -------------------------------------------------------------------------

const INDEX_HTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>TROM.AI</title>
<script type="module" src="/assets/app.js"></script>
</head>
<body><div id="root"></div></body>
</html>
`;

app.get("/assets/app.js", (req, res) => {
  res.type("application/javascript").send('console.log("tromai ui");\n');
});
app.get("/", (req, res) => res.type("text/html").send(INDEX_HTML));
// Like the upstream (a single-page app): any other GET outside /api, /test and /assets gets the UI.
app.get(/^\/(?!api\/|test\/|assets\/).*/, (req, res) => res.type("text/html").send(INDEX_HTML));
app.use((req, res) => sendError(res, 404, `Cannot ${req.method} ${req.originalUrl}`));

// Error handler: body parse errors, multer errors, anything thrown.
// eslint-disable-next-line no-unused-vars
app.use((err, req, res, next) => {
  const status = Number(err.status || err.statusCode) || 500;
  if (status >= 500) console.error(err);
  sendError(res, status, err.message || String(err));
});

// ---------------------------------------------------------------------------------------------
// Servers: one http server carrying express and socket.io; recreated by /test/restart
// ---------------------------------------------------------------------------------------------

async function start() {
  const server = http.createServer(app);
  const conns = new Set();
  server.on("connection", (sock) => {
    conns.add(sock);
    sock.on("close", () => conns.delete(sock));
  });

  // An SSE-era upstream has no socket.io: /socket.io/ then falls through to the web UI.
  io = SSE_MODE
    ? null
    : new SocketIOServer(server, {
        cors: { origin: "*" },
        pingInterval: PING_INTERVAL,
        pingTimeout: PING_TIMEOUT,
      });

  // Listen, retrying a little if the port is briefly still taken right after a restart.
  for (let attempt = 0; ; attempt++) {
    try {
      await new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, HOST, () => {
          server.off("error", reject);
          resolve();
        });
      });
      break;
    } catch (err) {
      if (err.code !== "EADDRINUSE" || port === 0 || attempt >= 50) throw err;
      await sleep(100);
    }
  }
  httpServer = server;
  connections = conns;
  port = server.address().port;
  process.stdout.write(`LISTENING ${port}\n`);
  if (!announced) {
    // For a person starting it by hand as a stand-in; stdout stays the fixtures' one line.
    announced = true;
    const era = V3 ? "3.x (SSE)" : SSE_MODE ? "2.2.5+ (SSE)" : "1.x/2.0 (Socket.IO)";
    console.error(`TROM.AI stand-in, ${era}, at http://${HOST}:${port}/ with chatflows: ${[...KNOWN_CHATFLOWS].join(", ")}`);
  }
}
let announced = false;

/** Closes socket.io and the http server, dropping every connection at once. */
async function stop() {
  const server = httpServer;
  const conns = connections;
  const oldIo = io;
  if (!server) return;
  httpServer = null;
  // io.close() disconnects all sockets, closes Engine.IO and then waits for server.close(), which
  // only completes once every connection is gone, so drop them right after starting it.
  const closed = oldIo ? oldIo.close() : new Promise((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  for (const sock of conns) sock.destroy(); // also upgraded (websocket) and in-flight requests
  await closed;
}

async function restart(downMs) {
  try {
    const downStart = Date.now();
    await stop();
    await sleep(Math.max(0, downMs - (Date.now() - downStart)));
    await start();
  } finally {
    restarting = false;
  }
}

// A failed write to a socket dropped by a restart must not take the fixture down.
process.on("uncaughtException", (err) => console.error("uncaughtException:", err));
process.on("unhandledRejection", (err) => console.error("unhandledRejection:", err));

let shuttingDown = false;
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    if (shuttingDown) return;
    shuttingDown = true;
    setTimeout(() => process.exit(0), 2000).unref(); // never hang on shutdown
    stop().finally(() => process.exit(0));
  });
}

await start();
