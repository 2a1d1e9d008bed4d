// A typed client for whospoke.v1.Orchestrator: connect (TLS and bearer token chosen
// independently, like the Python CLI's --tls/--tls-ca/--tls-cert/--tls-key/--token), upload a
// file, run Process, collect its events, delete the upload.
// Types come from the protos bundled in this package (npm run generate).
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

import type { ProtoGrpcType } from "./generated/orchestrator";
import type { OrchestratorClient } from "./generated/whospoke/v1/Orchestrator";
import type { ProcessEvent__Output } from "./generated/whospoke/v1/ProcessEvent";
import type { ProcessOptions } from "./generated/whospoke/v1/ProcessOptions";
import type { ProcessResult__Output } from "./generated/whospoke/v1/ProcessResult";
import type { UploadResponse__Output } from "./generated/whospoke/v1/UploadResponse";

export type { OrchestratorClient } from "./generated/whospoke/v1/Orchestrator";
export type { ProcessEvent__Output as ProcessEvent } from "./generated/whospoke/v1/ProcessEvent";
export type { ProcessOptions } from "./generated/whospoke/v1/ProcessOptions";
export type { ProcessResult__Output as ProcessResult } from "./generated/whospoke/v1/ProcessResult";
export type { Progress__Output as Progress } from "./generated/whospoke/v1/Progress";
export type { UploadResponse__Output as UploadResponse } from "./generated/whospoke/v1/UploadResponse";
export type { Warning__Output as Warning } from "./generated/whospoke/v1/Warning";

/** The contracts travel inside the package (protos/, copied by scripts/sync-protos.js), so a
 * vendored or installed copy loads them from beside dist/ and needs no repository. */
const PROTOS = path.join(__dirname, "..", "protos");
const CHUNK_BYTES = 1 << 20;
/** The orchestrator's port when an address names only a host, as in the Python CLI. */
export const DEFAULT_PORT = 50060;
export const DEFAULT_SERVER = `127.0.0.1:${DEFAULT_PORT}`;

export interface ConnectOptions {
  /** `host[:port]` (port 50060 when omitted) or a gRPC target such as `unix:/run/whospoke.sock`.
   * Default: $WHOSPOKE_SERVER, else 127.0.0.1:50060. */
  server?: string;
  /** Bearer token, sent as `authorization` metadata on every call, over TLS or plaintext.
   * Default: $WHOSPOKE_TOKEN. */
  token?: string;
  /** Use TLS. Default: $WHOSPOKE_TLS (1/true/yes/on), else on when a CA, a client certificate or
   * a server name is given. A token alone never switches TLS on. */
  tls?: boolean;
  /** PEM file of the CA that signed the server's certificate. Default: $WHOSPOKE_TLS_CA, else the
   * system's roots. */
  tlsCa?: string;
  /** PEM client certificate for mutual TLS, with `tlsKey`. Default: $WHOSPOKE_TLS_CERT. */
  tlsCert?: string;
  /** PEM private key of `tlsCert`. Default: $WHOSPOKE_TLS_KEY. */
  tlsKey?: string;
  /** The name the server's certificate must carry, when it is not the host connected to
   * (implies TLS). Default: $WHOSPOKE_TLS_SERVER_NAME. */
  tlsServerName?: string;
  /** grpc-js channel options, merged over the defaults. */
  channelOptions?: grpc.ChannelOptions;
  /** Where the defaults come from; process.env unless given. */
  env?: Record<string, string | undefined>;
}

/** What `connect` settled on, after options and environment, with the PEM files read. */
export interface Connection {
  address: string;
  tls: boolean;
  token: string;
  ca: Buffer | null;
  cert: Buffer | null;
  key: Buffer | null;
  serverName: string;
}

const SCHEME = /^(dns|ipv4|ipv6|unix|unix-abstract|vsock|xds):/i;
const ADDRESS_EXAMPLE = `give host[:port], such as localhost:${DEFAULT_PORT}`;

function checkPort(port: string, address: string): void {
  if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw new Error(`server: '${port}' in '${address}' is not a port (1 to 65535)`);
  }
}

/** `host` → `host:50060`, `[::1]` or `::1` → `[::1]:50060`; `host:port` and gRPC targets
 * (`unix:`, `dns:`…) unchanged; URLs and bad ports rejected, as the Python CLI does. */
export function serverAddress(server: string): string {
  const address = server.trim();
  if (!address) {
    throw new Error(`server: empty address (${ADDRESS_EXAMPLE})`);
  }
  if (SCHEME.test(address)) {
    return address;
  }
  if (address.includes("://")) {
    throw new Error(`server takes host[:port], not a URL: '${address}' (for TLS use tls)`);
  }
  if (address.startsWith("[")) {
    const close = address.indexOf("]");
    const rest = address.slice(close + 1);
    if (close < 2 || (rest && !rest.startsWith(":"))) {
      throw new Error(`server: cannot read '${address}' (${ADDRESS_EXAMPLE})`);
    }
    if (!rest) {
      return `${address}:${DEFAULT_PORT}`;
    }
    checkPort(rest.slice(1), address);
    return address;
  }
  if (address.split(":").length > 2) {
    if (!net.isIPv6(address)) {
      throw new Error(`server: cannot read '${address}' (${ADDRESS_EXAMPLE})`);
    }
    return `[${address}]:${DEFAULT_PORT}`;
  }
  const [host, port] = address.split(":");
  if (!host) {
    throw new Error(`server: no host in '${address}' (${ADDRESS_EXAMPLE})`);
  }
  if (port === undefined) {
    return `${address}:${DEFAULT_PORT}`;
  }
  checkPort(port, address);
  return address;
}

function envFlag(value: string | undefined): boolean {
  const v = (value ?? "").trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(v)) {
    return true;
  }
  if (["", "0", "false", "no", "off"].includes(v)) {
    return false;
  }
  throw new Error(`WHOSPOKE_TLS='${value}' is not a boolean (set it to 1 or 0)`);
}

/** A PEM file's bytes, read up front so that a bad path fails before any call. */
function readPem(file: string, what: string): Buffer | null {
  if (!file) {
    return null;
  }
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : "cannot read";
    throw new Error(`${what}: ${reason}: ${file}`);
  }
  if (!data.includes("-----BEGIN ")) {
    throw new Error(`${what}: ${file} is not a PEM file (text starting with -----BEGIN)`);
  }
  return data;
}

/** Options first, then the WHOSPOKE_* environment; TLS and the token are independent. */
export function resolveConnection(options: ConnectOptions = {}): Connection {
  const env = options.env ?? process.env;
  const pick = (value: string | undefined, name: string): string =>
    (value ?? env[name] ?? "").trim();
  const tlsCa = pick(options.tlsCa, "WHOSPOKE_TLS_CA");
  const tlsCert = pick(options.tlsCert, "WHOSPOKE_TLS_CERT");
  const tlsKey = pick(options.tlsKey, "WHOSPOKE_TLS_KEY");
  const serverName = pick(options.tlsServerName, "WHOSPOKE_TLS_SERVER_NAME");
  if (Boolean(tlsCert) !== Boolean(tlsKey)) {
    throw new Error("tlsCert and tlsKey (WHOSPOKE_TLS_CERT, WHOSPOKE_TLS_KEY) go together");
  }
  const implied = Boolean(tlsCa || tlsCert || serverName);
  if (options.tls === false && implied) {
    throw new Error("tls: false contradicts tlsCa, tlsCert or tlsServerName");
  }
  const tls = options.tls ?? (envFlag(env.WHOSPOKE_TLS) || implied);
  return {
    address: serverAddress(pick(options.server, "WHOSPOKE_SERVER") || DEFAULT_SERVER),
    tls,
    token: pick(options.token, "WHOSPOKE_TOKEN"),
    ca: readPem(tlsCa, "tlsCa (WHOSPOKE_TLS_CA)"),
    cert: readPem(tlsCert, "tlsCert (WHOSPOKE_TLS_CERT)"),
    key: readPem(tlsKey, "tlsKey (WHOSPOKE_TLS_KEY)"),
    serverName,
  };
}

/** The token as call metadata through an interceptor rather than call credentials: grpc-js
 * refuses call credentials on plaintext channels, and a token-protected orchestrator on a
 * trusted network or behind a TLS-terminating proxy is plaintext. */
function bearer(token: string): grpc.Interceptor {
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start(metadata, listener, next) {
        metadata.set("authorization", `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

let proto: ProtoGrpcType | undefined;

function orchestratorProto(): ProtoGrpcType {
  if (!proto) {
    const definition = protoLoader.loadSync("whospoke/v1/orchestrator.proto", {
      includeDirs: [PROTOS],
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    });
    proto = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  }
  return proto;
}

/** A client of the orchestrator: `connect()`, `connect("host:port")`, `connect({ tls: true })`. */
export function connect(options?: ConnectOptions): OrchestratorClient;
export function connect(server: string, options?: ConnectOptions): OrchestratorClient;
export function connect(
  first: string | ConnectOptions = {},
  rest: ConnectOptions = {},
): OrchestratorClient {
  const options = typeof first === "string" ? { ...rest, server: first } : first;
  const { address, tls, token, ca, key, cert, serverName } = resolveConnection(options);
  const credentials = tls
    ? grpc.credentials.createSsl(ca, key, cert)
    : grpc.credentials.createInsecure();
  const Orchestrator = orchestratorProto().whospoke.v1.Orchestrator;
  return new Orchestrator(address, credentials, {
    "grpc.max_receive_message_length": 256 << 20,
    ...(serverName ? { "grpc.ssl_target_name_override": serverName } : {}),
    ...options.channelOptions,
    interceptors: token ? [bearer(token)] : [],
  });
}

/** Streams a file to Upload in 1 MiB chunks, reading as the channel drains; resolves with the
 * upload id. A file that cannot be read rejects with the file system's error. */
export function upload(client: OrchestratorClient, file: string): Promise<UploadResponse__Output> {
  return new Promise((resolve, reject) => {
    const source = fs.createReadStream(file, { highWaterMark: CHUNK_BYTES });
    const call = client.Upload((error, response) => {
      if (error || !response) {
        source.destroy();
        reject(error ?? new Error("Upload: no response"));
      } else {
        resolve(response);
      }
    });
    let filename = path.basename(file);
    source.on("error", (error) => {
      reject(error);
      call.cancel();
    });
    source.on("data", (data) => {
      const more = call.write({ data, filename });
      filename = "";
      if (!more) {
        source.pause();
        call.once("drain", () => source.resume());
      }
    });
    source.on("end", () => call.end());
  });
}

export interface Processed {
  events: ProcessEvent__Output[];
  result: ProcessResult__Output;
}

/** Runs Process on an upload; `onEvent` sees each event as it arrives (if it throws, the call is
 * cancelled and the promise rejects with that error). */
export function processUpload(
  client: OrchestratorClient,
  uploadId: string,
  options: ProcessOptions = {},
  onEvent: (event: ProcessEvent__Output) => void = () => {},
): Promise<Processed> {
  return new Promise((resolve, reject) => {
    const events: ProcessEvent__Output[] = [];
    const call = client.Process({ upload_id: uploadId, options });
    call.on("data", (event: ProcessEvent__Output) => {
      events.push(event);
      try {
        onEvent(event);
      } catch (error) {
        reject(error);
        call.cancel();
      }
    });
    call.on("error", reject);
    call.on("end", () => {
      const last = events[events.length - 1];
      if (last?.result) {
        resolve({ events, result: last.result });
      } else {
        reject(new Error("the stream ended without a result"));
      }
    });
  });
}

export function deleteUpload(client: OrchestratorClient, uploadId: string): Promise<void> {
  return new Promise((resolve, reject) =>
    client.DeleteUpload({ upload_id: uploadId }, (error) => (error ? reject(error) : resolve())),
  );
}

/** Upload, Process, and always delete the upload: the server keeps uploads until their TTL. */
export async function processFile(
  client: OrchestratorClient,
  file: string,
  options: ProcessOptions = {},
  onEvent?: (event: ProcessEvent__Output) => void,
): Promise<Processed> {
  const { upload_id } = await upload(client, file);
  let processed: Processed;
  try {
    processed = await processUpload(client, upload_id, options, onEvent);
  } catch (error) {
    // The processing error is the one to report; a failed clean-up must not mask it.
    await deleteUpload(client, upload_id).catch(() => {});
    throw error;
  }
  await deleteUpload(client, upload_id);
  return processed;
}
