// Test upstream that behaves like TROM.AI 1.x / 2.0 (the Socket.IO era of Flowise), for the
// gateway's tests. See README.md beside this file and /work/shared/tromai-protocol.md, section 1.
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

const STREAMING = process.env.STREAMING || "socketio";
if (STREAMING !== "socketio" && STREAMING !== "sse") {
  console.error(`STREAMING must be socketio or sse, not ${STREAMING}`);
  process.exit(2);
}
const SSE_MODE = STREAMING === "sse";

const ALL_EVENTS = JSON.parse(fs.readFileSync(new URL("./all-events.json", import.meta.url), "utf8"));

const KNOWN_CHATFLOWS = new Set(["all-events", "tokens", "error", "echo-question", "not-streamable"]);
/** Chatflows that cannot stream: they answer JSON even when asked to stream, as the upstream does. */
const NOT_STREAMABLE = new Set(["not-streamable"]);

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
  res.status(statusCode).json({ statusCode, success: false, message, stack: "" });
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

// ----- TROM.AI API ---------------------------------------------------------------------------

app.get("/api/v1/chatflows-streaming/:id", (req, res) => {
  if (!KNOWN_CHATFLOWS.has(req.params.id)) return sendError(res, 404, `Chatflow ${req.params.id} not found`);
  res.json({ isStreaming: !NOT_STREAMABLE.has(req.params.id) });
});

app.put("/api/v1/chatmessage/abort/:chatflowid/:chatid", (req, res) => {
  const preds = running.get(`${req.params.chatflowid}/${req.params.chatid}`);
  // The prediction notices the flag itself, emits `abort` and answers (respecting a stall).
  if (preds) for (const p of preds) p.aborted = true;
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
  if (SSE_MODE && wantsStreaming(body) && !NOT_STREAMABLE.has(chatflowId)) {
    return ssePrediction(res, { chatflowId, chatId, question, overrideConfig });
  }

  if (chatflowId === "error") return sendError(res, 500, "Flow failed: boom");

  // The upstream fails with a 500 when the body was not parsed (e.g. JSON sent without
  // `Content-Type: application/json`): the question is then undefined.
  if (typeof question !== "string") {
    return sendError(res, 500, "question is missing (was the body sent with Content-Type: application/json?)");
  }

  // Like the upstream: io.to(id).emit(...), an unknown id is silently dropped. Read `io` at emit
  // time since /test/restart replaces it.
  const streaming = typeof socketIOClientId === "string" && socketIOClientId !== "";
  const emit = streaming ? (name, ...args) => io && io.to(socketIOClientId).emit(name, ...args) : () => {};

  let text;
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
    case "not-streamable":
      text = question; // never emits, whoever asks
      break;
  }

  await waitWhileStalled();
  if (res.destroyed || res.headersSent) return; // client went away (or the server restarted)
  res.json({ text, question, chatId, chatMessageId: crypto.randomUUID(), sessionId: chatId });
}

/**
 * The `tokens` chatflow. Token i is `${question}:${i}` (or `${question}:${i}:${epochMs}` with
 * stamp). `start` carries token 0's string (the same string token 0 then carries), then every
 * token in order, then `end`. Returns the text: the emitted tokens joined. On abort: stops, emits
 * `abort` (no `end`), and returns what was emitted so far.
 */
async function runTokens({ chatflowId, chatId, question, overrideConfig, emit }) {
  const count = overrideConfig.count !== undefined ? Math.max(0, Math.floor(Number(overrideConfig.count) || 0)) : 100;
  const rate = Math.max(0, Number(overrideConfig.rate) || 0);
  const stamp = overrideConfig.stamp === true || overrideConfig.stamp === "true";

  const key = `${chatflowId}/${chatId}`;
  const state = { aborted: false };
  if (!running.has(key)) running.set(key, new Set());
  running.get(key).add(state);

  const emitted = [];
  const make = (i) => (stamp ? `${question}:${i}:${performance.timeOrigin + performance.now()}` : `${question}:${i}`);
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
          const nextDue = t0 + emitted.length * period - performance.now();
          await sleep(Math.min(10, Math.max(1, nextDue))); // wake at most every ~10 ms
        }
      }
    }
    if (state.aborted) return finishAborted();
    await waitWhileStalled();
    emit("end");
    return emitted.join("");
  } finally {
    const set = running.get(key);
    set.delete(state);
    if (set.size === 0) running.delete(key);
  }

  async function finishAborted() {
    await waitWhileStalled();
    emit("abort");
    return emitted.join("");
  }
}

// ---------------------------------------------------------------------------------------------
// SSE-era predictions (STREAMING=sse, body `streaming: true`)
// ---------------------------------------------------------------------------------------------

/** `streaming: true` as JSON, or the string "true" (multipart and urlencoded fields), as the upstream accepts. */
const wantsStreaming = (body) => body.streaming === true || body.streaming === "true";

/** Written with `message` without its colon, as 2.1.0 to 3.1.0 did, so clients meet that quirk too. */
const SSE_LEGACY_MESSAGE = new Set(["end", "abort", "error"]);

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

/**
 * The SSE answer to a streaming prediction: 200 text/event-stream, the chatflow's events as blocks,
 * a `:heartbeat` comment after the first block, then `metadata` and `end` ("[DONE]"). Failures
 * after the headers (the `error` chatflow, a missing question) are an `error` event then `end`, as
 * the upstream answers even an unauthorised streaming call.
 */
async function ssePrediction(res, { chatflowId, chatId, question, overrideConfig }) {
  res.status(200);
  res.setHeader("Content-Type", "text/event-stream");
  res.setHeader("Cache-Control", "no-cache");
  res.setHeader("Connection", "keep-alive");
  res.setHeader("X-Accel-Buffering", "no");
  res.flushHeaders();

  let heartbeat = true;
  const write = (event, data) => {
    if (res.destroyed || res.writableEnded) throw CLIENT_GONE;
    res.write(sseBlock(event, data));
    if (heartbeat) {
      heartbeat = false;
      res.write(":heartbeat\n\n"); // from 3.1.2 one comes every 30 s; here once, mid-stream
    }
  };
  const finish = () => {
    if (!res.destroyed && !res.writableEnded) res.end();
  };

  try {
    if (chatflowId === "error" || typeof question !== "string") {
      write("error", chatflowId === "error" ? "Flow failed: boom" : "question is missing");
      write("end", "[DONE]");
      return finish();
    }

    switch (chatflowId) {
      case "all-events":
        // An SSE event carries one value: entries with none (the file's end, abort, noArgs) or several
        // (brandNewEvent, numbers) have no SSE form and are left out; the stream's own end closes it.
        for (const e of ALL_EVENTS.events) if (e.args.length === 1) write(e.event, sseValue(e.args[0]));
        break;
      case "echo-question":
        write("token", question);
        break;
      case "tokens": {
        let aborted = false;
        await runTokens({
          chatflowId,
          chatId,
          question,
          overrideConfig,
          emit: (name, ...args) => {
            if (name === "end") return; // the stream ends with metadata and end below
            if (name === "abort") {
              aborted = true;
              return write("abort", "[DONE]");
            }
            write(name, args[0]);
          },
        });
        if (aborted) return finish(); // like the upstream: abort, then the response ends
        break;
      }
    }

    await waitWhileStalled();
    write("metadata", { chatId, chatMessageId: crypto.randomUUID(), question, sessionId: chatId, memoryType: "Buffer Memory" });
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
}

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
