// First call from Node.js, as a store till would make it: open an account,
// earn, try to redeem too much (and read the decoded error details), redeem,
// read the balance. Over TLS with the dev CA and a channel token.
//
//   npm install            (in examples/node)
//   LEDGER_TOKEN=... node first_call.js
//
// The .proto files are loaded from protos/ at run time; the google.rpc
// error details from protos/third_party (docs/client-sdk.md).
"use strict";

const fs = require("fs");
const path = require("path");
const crypto = require("crypto");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const protos = process.env.LEDGER_PROTOS || path.join(__dirname, "..", "..", "protos");
const address = process.env.LEDGER_ADDRESS || "127.0.0.1:50051";
const ca = fs.readFileSync(
  process.env.LEDGER_CA || path.join(__dirname, "..", "..", "data", "certs", "ca.pem")
);
const token = process.env.LEDGER_TOKEN;
if (!token) throw new Error("LEDGER_TOKEN: required (loyalty-ledger token issue ...)");

const load = (file) =>
  grpc.loadPackageDefinition(
    protoLoader.loadSync(file, {
      includeDirs: [protos, path.join(protos, "third_party")],
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: true,
    })
  );
const ledgerPkg = load("loyalty/ledger/v1/ledger.proto").loyalty.ledger.v1;

const creds = grpc.credentials.combineChannelCredentials(
  grpc.credentials.createSsl(ca),
  grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    const md = new grpc.Metadata();
    md.add("authorization", `Bearer ${token}`);
    callback(null, md);
  })
);
const ledger = new ledgerPkg.LedgerService(address, creds);
const context = { channel_id: process.env.LEDGER_CHANNEL || "pos-demo", store_id: "store-0001" };
const key = () => `node-${crypto.randomUUID()}`;

const call = (method, request) =>
  new Promise((resolve, reject) =>
    ledger[method](request, { deadline: Date.now() + 5000 }, (err, response) =>
      err ? reject(err) : resolve(response)
    )
  );

// google.rpc.Status from the grpc-status-details-bin trailer, with its
// BadRequest / ErrorInfo / RetryInfo details decoded by their type names
const rpcTypes = protobuf.loadSync(
  ["status.proto", "error_details.proto"].map((f) =>
    path.join(protos, "third_party", "google", "rpc", f)
  )
);
function details(err) {
  const raw = err.metadata && err.metadata.get("grpc-status-details-bin")[0];
  if (!raw) return {};
  const status = rpcTypes.lookupType("google.rpc.Status").decode(raw);
  const out = {};
  for (const any of status.details) {
    const name = (any.typeUrl || any.type_url).split("/").pop();
    out[name] = rpcTypes.lookupType(name).decode(any.value);
  }
  return out;
}

(async () => {
  const opened = await call("OpenAccount", { idempotency_key: key(), context });
  const account = opened.member_account_id;
  const earned = await call("Earn", {
    idempotency_key: key(),
    context,
    member_account_id: account,
    points: 120,
  });
  try {
    const tooMuch = { idempotency_key: key(), context, member_account_id: account, points: 500 };
    await call("Redeem", tooMuch);
    throw new Error("a redemption beyond the balance was accepted");
  } catch (err) {
    if (err.code !== grpc.status.FAILED_PRECONDITION) throw err;
    const info = details(err)["google.rpc.ErrorInfo"];
    console.log(`refused: ${info.reason}, available ${info.metadata.available}`);
  }
  await call("Redeem", { idempotency_key: key(), context, member_account_id: account, points: 20 });
  const { balance } = await call("GetBalance", { member_account_id: account });
  console.log(`account ${account}: ${balance.points} points (earn entry ${earned.entry.sequence})`);
  ledger.close();
})().catch((err) => {
  console.error(err.message || err);
  process.exit(1);
});
