// A typed client for whospoke.v1.Orchestrator: upload a file, run Process, collect events.
// Types come from protos/ through @grpc/proto-loader's proto-loader-gen-types (npm run generate).
import * as fs from "node:fs";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

import type { ProtoGrpcType } from "./generated/orchestrator";
import type { OrchestratorClient } from "./generated/whospoke/v1/Orchestrator";
import type { ProcessEvent__Output } from "./generated/whospoke/v1/ProcessEvent";
import type { ProcessOptions } from "./generated/whospoke/v1/ProcessOptions";
import type { ProcessResult__Output } from "./generated/whospoke/v1/ProcessResult";
import type { UploadResponse__Output } from "./generated/whospoke/v1/UploadResponse";

const PROTOS = path.resolve(__dirname, "..", "..", "..", "protos");
const CHUNK_BYTES = 1 << 20;

export function connect(address: string, token?: string): OrchestratorClient {
  const definition = protoLoader.loadSync("whospoke/v1/orchestrator.proto", {
    includeDirs: [PROTOS],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const proto = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
  let credentials = grpc.credentials.createInsecure();
  if (token) {
    const bearer = grpc.credentials.createFromMetadataGenerator((_, callback) => {
      const metadata = new grpc.Metadata();
      metadata.set("authorization", `Bearer ${token}`);
      callback(null, metadata);
    });
    credentials = grpc.credentials.combineChannelCredentials(
      grpc.credentials.createSsl(),
      bearer,
    );
  }
  return new proto.whospoke.v1.Orchestrator(address, credentials, {
    "grpc.max_receive_message_length": 256 << 20,
  });
}

/** Streams a file to Upload in 1 MiB chunks; resolves with the upload id. */
export function upload(client: OrchestratorClient, file: string): Promise<UploadResponse__Output> {
  return new Promise((resolve, reject) => {
    const call = client.Upload((error, response) =>
      error || !response ? reject(error) : resolve(response),
    );
    const data = fs.readFileSync(file);
    for (let offset = 0; offset < data.length; offset += CHUNK_BYTES) {
      call.write({
        data: data.subarray(offset, offset + CHUNK_BYTES),
        filename: offset === 0 ? path.basename(file) : "",
      });
    }
    call.end();
  });
}

export interface Processed {
  events: ProcessEvent__Output[];
  result: ProcessResult__Output;
}

/** Runs Process on an upload; `onEvent` sees each event as it arrives. */
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
      onEvent(event);
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
