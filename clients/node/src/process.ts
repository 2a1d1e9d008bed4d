#!/usr/bin/env node
// whospoke-process [--server HOST[:PORT]] [--token T] [--tls] [--tls-ca CA] [--tls-cert C --tls-key K]
//                  [--tls-server-name NAME] FILE
// Uploads FILE, runs Process with live progress and warnings on stderr, prints a JSON summary on
// stdout and deletes the upload. Flags match the Python CLI's; each defaults from its
// WHOSPOKE_* variable (WHOSPOKE_SERVER, WHOSPOKE_TOKEN, WHOSPOKE_TLS, WHOSPOKE_TLS_CA, ...).
// Exit status: 0 done, 1 the call or the file failed, 2 usage.
import * as fs from "node:fs";
import { parseArgs } from "node:util";
import type { ServiceError } from "@grpc/grpc-js";

import {
  connect,
  deleteUpload,
  processUpload,
  resolveConnection,
  upload,
  type ConnectOptions,
  type ProcessEvent,
  type ProcessResult,
} from "./client";

const USAGE =
  "usage: whospoke-process [--server HOST[:PORT]] [--token TOKEN] [--tls] [--tls-ca PEM] " +
  "[--tls-cert PEM --tls-key PEM] [--tls-server-name NAME] FILE";

class UsageError extends Error {}

interface Parsed {
  file: string;
  options: ConnectOptions;
  address: string;
}

function parse(argv: string[]): Parsed {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        server: { type: "string" },
        token: { type: "string" },
        tls: { type: "boolean" },
        "tls-ca": { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "tls-server-name": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length !== 1) {
    throw new UsageError(values.help ? "" : "give exactly one FILE");
  }
  const options: ConnectOptions = {
    server: values.server,
    token: values.token,
    tls: values.tls,
    tlsCa: values["tls-ca"],
    tlsCert: values["tls-cert"],
    tlsKey: values["tls-key"],
    tlsServerName: values["tls-server-name"],
  };
  try {
    return { file: positionals[0], options, address: resolveConnection(options).address };
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function report(event: ProcessEvent): void {
  if (event.progress) {
    process.stderr.write(`\r${event.progress.overall_percent.toFixed(0)} %`);
  } else if (event.warning) {
    const { code, message, start_seconds: start, end_seconds: end } = event.warning;
    const span = end > start ? ` ${start.toFixed(1)}-${end.toFixed(1)} s` : "";
    process.stderr.write(`\nwarning [${code}]${span}: ${message}\n`);
  }
}

function summary(uploadId: string, events: ProcessEvent[], result: ProcessResult): string {
  return JSON.stringify({
    upload_id: uploadId,
    event_kinds: events.map((e) => e.event),
    warnings: events.flatMap((e) => (e.warning ? [e.warning.code] : [])),
    text: result.text,
    language: result.language,
    speakers: result.speakers.map((s) => s.speaker),
    segments: result.segments.map((s) => ({
      start: s.start_seconds,
      end: s.end_seconds,
      speaker: s.speaker,
      text: s.text,
      words: s.words.map((w) => ({ word: w.text.trim(), speaker: w.speaker })),
    })),
  });
}

/** A hint for the status codes a misdirected call gets (the grpc-js message is the server's). */
function hint(error: ServiceError, address: string): string {
  switch (error.code) {
    case 14: // UNAVAILABLE
      return `is the orchestrator running at ${address} (whospoke serve)? does it use TLS (--tls)?`;
    case 12: // UNIMPLEMENTED
      return `is ${address} the orchestrator's port (50060 by default), not a backend's?`;
    case 16: // UNAUTHENTICATED
      return "give the orchestrator's token with --token or WHOSPOKE_TOKEN";
    default:
      return "";
  }
}

async function main(): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parse(process.argv.slice(2));
  } catch (error) {
    const message = (error as Error).message;
    console.error(message ? `whospoke-process: ${message}\n${USAGE}` : USAGE);
    return 2;
  }
  const { file, options, address } = parsed;
  const stat = fs.statSync(file, { throwIfNoEntry: false });
  if (!stat?.isFile()) {
    console.error(`whospoke-process: ${file}: ${stat ? "not a file" : "no such file"}`);
    return 1;
  }
  const client = connect(options);
  try {
    const uploaded = await upload(client, file);
    try {
      const { events, result } = await processUpload(client, uploaded.upload_id, {}, report);
      process.stderr.write("\n");
      console.log(summary(uploaded.upload_id, events, result));
    } finally {
      await deleteUpload(client, uploaded.upload_id).catch(() => {});
    }
    return 0;
  } catch (error) {
    const help = "code" in (error as object) ? hint(error as ServiceError, address) : "";
    console.error(`whospoke-process: ${(error as Error).message}${help ? `\n  hint: ${help}` : ""}`);
    return 1;
  } finally {
    client.close();
  }
}

main().then((code) => {
  process.exitCode = code;
});
