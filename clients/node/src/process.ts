// Example: node dist/process.js --server 127.0.0.1:50060 FILE
// Uploads FILE, runs Process with live progress on stderr, prints a JSON summary on stdout.
import { connect, deleteUpload, processUpload, upload } from "./client";

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const serverAt = args.indexOf("--server");
  const server = serverAt >= 0 ? args[serverAt + 1] : "127.0.0.1:50060";
  const file = args.filter((_, i) => i !== serverAt && i !== serverAt + 1)[0];
  if (!file) {
    throw new Error("usage: process.js [--server HOST:PORT] FILE");
  }
  const client = connect(server, process.env.WHOSPOKE_TOKEN);
  const uploaded = await upload(client, file);
  try {
    const { events, result } = await processUpload(client, uploaded.upload_id, {}, (event) => {
      if (event.progress) {
        process.stderr.write(`\r${event.progress.overall_percent.toFixed(0)} %`);
      }
    });
    process.stderr.write("\n");
    const kinds = events.map((e) => e.event);
    console.log(
      JSON.stringify({
        upload_id: uploaded.upload_id,
        event_kinds: kinds,
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
      }),
    );
  } finally {
    await deleteUpload(client, uploaded.upload_id);
    client.close();
  }
}

main().catch((error: Error) => {
  console.error(`whospoke: ${error.message}`);
  process.exit(1);
});
