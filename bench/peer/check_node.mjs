// check_node.mjs - a second, independent consumer of the converted GGUF: node-llama-cpp's own
// embedding API (LlamaEmbeddingContext), with the pooling the GGUF declares (LAST). bench_peer.sh
// runs it once to show that the file works outside our C driver, and compares its vector with
// tkr-embed's. Not timed: node-llama-cpp evaluates one sequence per call.
//
//   node check_node.mjs MODEL.gguf IDS_FILE THREADS OUT_FILE
// Embeds the first line of IDS_FILE (whole-prompt token ids) and writes the L2-normalised
// vector as one line of space-separated numbers to OUT_FILE.
import {getLlama} from "node-llama-cpp";
import {readFileSync, writeFileSync} from "node:fs";

const [modelPath, idsPath, threads, outPath] = process.argv.slice(2);
if (!outPath) {
    console.error("usage: node check_node.mjs MODEL.gguf IDS_FILE THREADS OUT_FILE");
    process.exit(2);
}
const line = readFileSync(idsPath, "utf8").split("\n").find((l) => l.trim() !== "");
const ids = line.trim().split(/\s+/).map(Number);
const llama = await getLlama({gpu: false, build: "never", logLevel: "error"});
const model = await llama.loadModel({modelPath});
const context = await model.createEmbeddingContext({contextSize: Math.max(256, ids.length), threads: Number(threads)});
const embedding = await context.getEmbeddingFor(ids);
const v = Array.from(embedding.vector);
const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
writeFileSync(outPath, v.map((x) => (x / norm).toPrecision(8)).join(" ") + "\n");
await context.dispose();
await model.dispose();
console.log(`node-llama-cpp: ${ids.length} tokens, ${v.length} dims`);
