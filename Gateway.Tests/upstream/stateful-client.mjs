// A JavaScript client with stateful reconnect, for the network-blip test: it connects through
// <relayBase> (a TCP relay the test can cut), prints "READY <id> <connectionId>", then one "TOKEN <data>" line per
// token as it arrives, and when `end` arrives prints "DONE <json>" and exits.
// Usage: node stateful-client.mjs <relayBase>
import * as signalR from "@microsoft/signalr";

const [base] = process.argv.slice(2);
const connection = new signalR.HubConnectionBuilder()
  .withUrl(`${base}/hubs/prediction`, { transport: signalR.HttpTransportType.WebSockets })
  .withStatefulReconnect()
  .configureLogging({ log: (level, message) => process.stderr.write(`[signalr ${level}] ${message}\n`) })
  .build();

const tokens = [];
let closed = null;
let stopping = false;
connection.on("token", (token) => {
  tokens.push(token);
  process.stdout.write(`TOKEN ${token}\n`);
});
connection.on("end", () => {
  process.stdout.write(`DONE ${JSON.stringify({ tokens, connectionId: connection.connectionId, state: connection.state, closed })}\n`);
  stopping = true;
  connection.stop().then(() => process.exit(0));
});
connection.onclose((error) => {
  if (stopping) return;
  closed = error ? String(error) : "closed";
  process.stdout.write(`CLOSED ${closed}\n`);
  process.exit(1);
});

try {
  await connection.start();
  process.stdout.write(`READY ${await connection.invoke("GetSocketIOClientId")} ${connection.connectionId}\n`);
} catch (error) {
  process.stderr.write(`stateful-client: ${error}\n`);
  process.exit(1);
}
