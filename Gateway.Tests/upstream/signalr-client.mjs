// JavaScript client test for the gateway: the TROM.AI streaming guide, with SignalR in place of
// Socket.IO, using the real @microsoft/signalr package under Node.
//
//   node signalr-client.mjs <gatewayBaseUrl> <chatflowId> <question>
//
// stdout: exactly one line of JSON
//   {id, connectionId, status, response, events:[{event, args}]}
// exit 0 when that line was printed; on any failure the error goes to stderr and the exit code
// is 1. SignalR's own log goes to stderr.

import fs from "node:fs";
import * as signalR from "@microsoft/signalr";

const WAIT_MS = 10_000;

const allEvents = JSON.parse(fs.readFileSync(new URL("./all-events.json", import.meta.url), "utf8"));
const eventNames = [...new Set(allEvents.events.map((e) => e.event))];

/** SignalR logger writing to stderr: the default console logger would write to stdout. */
const stderrLogger = {
  log(level, message) {
    if (level >= signalR.LogLevel.Information) {
      process.stderr.write(`[signalr ${signalR.LogLevel[level]}] ${message}\n`);
    }
  },
};

async function main() {
  const [base0, chatflowId, question] = process.argv.slice(2);
  if (!base0 || !chatflowId || question === undefined) {
    throw new Error("usage: node signalr-client.mjs <gatewayBaseUrl> <chatflowId> <question>");
  }
  const base = base0.replace(/\/+$/, "");

  const connection = new signalR.HubConnectionBuilder()
    .withUrl(base + "/hubs/prediction")
    .configureLogging(stderrLogger)
    .build();

  // Every event is recorded in arrival order; `check` re-evaluates the wait condition on each one
  // so the wait below ends on the event itself rather than after a fixed sleep.
  const events = [];
  let check = () => {};
  const record = (e) => {
    events.push(e);
    check();
  };
  for (const name of eventNames) {
    connection.on(name, (...args) => record({ event: name, args }));
  }

  try {
    await connection.start();
  } catch (err) {
    throw new Error(`cannot connect to ${base}/hubs/prediction: ${err?.message ?? err}`);
  }

  try {
    const id = await connection.invoke("GetSocketIOClientId");

    const res = await fetch(base + "/api/v1/prediction/" + encodeURIComponent(chatflowId), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ question, socketIOClientId: id }),
    });
    const status = res.status;
    const raw = await res.text();
    let response;
    try {
      response = JSON.parse(raw);
    } catch {
      response = raw; // not JSON: hand back the text as it came
    }

    // all-events: wait for as many events as the file lists; other flows: for an `end`. A failed
    // prediction streams nothing, so there is nothing to wait for then.
    const done =
      chatflowId === "all-events"
        ? () => events.length >= allEvents.events.length
        : () => events.some((e) => e.event === "end");
    if (res.ok && !done()) {
      const reached = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve(false), WAIT_MS);
        check = () => {
          if (done()) {
            clearTimeout(timer);
            resolve(true);
          }
        };
      });
      if (!reached) {
        process.stderr.write(`signalr-client: gave up waiting after ${WAIT_MS} ms with ${events.length} event(s)\n`);
      }
    }
    check = () => {};

    const connectionId = connection.connectionId;
    await connection.stop();
    const line = JSON.stringify({ id, connectionId, status, response, events }) + "\n";
    await new Promise((resolve, reject) => process.stdout.write(line, (err) => (err ? reject(err) : resolve())));
  } finally {
    if (connection.state !== signalR.HubConnectionState.Disconnected) {
      await connection.stop().catch(() => {});
    }
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`signalr-client: ${err?.message ?? err}\n`);
    process.exit(1);
  },
);
