// frameworks.mjs - the JS AI frameworks, each with its default settings, against tkr-embed's
// server (a fake engine whose vectors are known). Run by tests/cli/server_frameworks.sh:
//   node frameworks.mjs PORT KEY DIRECT_JSON
// DIRECT_JSON holds the vectors the engine computes directly for the texts below. Every vector
// that comes back through a framework must equal it bit for bit (as float32).
import { OpenAIEmbeddings } from '@langchain/openai';
import { OpenAIEmbedding } from '@llamaindex/openai';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { embed, embedMany } from 'ai';
import { readFileSync } from 'node:fs';

const [port, key, directFile] = process.argv.slice(2);
const texts = ['the cat sat', 'a dog', 'hello world'];
const direct = JSON.parse(readFileSync(directFile, 'utf8'));
const baseURL = `http://127.0.0.1:${port}/v1`;
let checks = 0;
function check(cond, msg) {
  if (!cond) {
    console.error(`FAIL: ${msg}`);
    process.exit(1);
  }
  checks++;
}
const f32 = (x) => Math.fround(x);
const sameVec = (a, b) => a.length === b.length && a.every((x, i) => f32(x) === f32(b[i]));
const sameAll = (vs) => vs.length === direct.length && vs.every((v, i) => sameVec(v, direct[i]));

// LangChain.js: OpenAIEmbeddings with its defaults (model name, batching, base64 transport)
{
  const lc = new OpenAIEmbeddings({ apiKey: key, configuration: { baseURL }, maxRetries: 0 });
  const docs = await lc.embedDocuments(texts);
  check(sameAll(docs), 'LangChain embedDocuments: vectors differ from the engine');
  const q = await lc.embedQuery(texts[1]);
  check(sameVec(q, direct[1]), 'LangChain embedQuery: vector differs');
  const lcModel = new OpenAIEmbeddings({ apiKey: key, model: 'fake-model', configuration: { baseURL }, maxRetries: 0 });
  check(sameVec(await lcModel.embedQuery(texts[0]), direct[0]), 'LangChain with model name: vector differs');
  console.log('ok   LangChain.js OpenAIEmbeddings (embedDocuments, embedQuery)');
}

// LlamaIndex.TS: OpenAIEmbedding with its defaults
{
  const li = new OpenAIEmbedding({ apiKey: key, additionalSessionOptions: { baseURL }, maxRetries: 0 });
  const one = await li.getTextEmbedding(texts[2]);
  check(sameVec(one, direct[2]), 'LlamaIndex getTextEmbedding: vector differs');
  const many = await li.getTextEmbeddings(texts);
  check(sameAll(many), 'LlamaIndex getTextEmbeddings: vectors differ');
  const q = await li.getQueryEmbedding({ type: 'text', text: texts[0] });
  check(sameVec(q, direct[0]), 'LlamaIndex getQueryEmbedding: vector differs');
  console.log('ok   LlamaIndex.TS OpenAIEmbedding (getTextEmbedding(s), getQueryEmbedding)');
}

// Vercel AI SDK: an OpenAI-compatible provider, embed and embedMany
{
  const provider = createOpenAICompatible({ name: 'tkr-embed', baseURL, apiKey: key });
  const model = provider.textEmbeddingModel('fake-model');
  const { embedding, usage } = await embed({ model, value: texts[0], maxRetries: 0 });
  check(sameVec(embedding, direct[0]), 'AI SDK embed: vector differs');
  check(usage && usage.tokens > 0, `AI SDK embed: usage tokens ${JSON.stringify(usage)}`);
  const { embeddings } = await embedMany({ model, values: texts, maxRetries: 0 });
  check(sameAll(embeddings), 'AI SDK embedMany: vectors differ');
  // a wrong key surfaces as the framework's error with the server's status
  const bad = createOpenAICompatible({ name: 'tkr-embed', baseURL, apiKey: 'wrong' });
  let status = 0;
  try {
    await embed({ model: bad.textEmbeddingModel('fake-model'), value: 'x', maxRetries: 0 });
  } catch (e) {
    status = e.statusCode ?? e.status ?? 0;
  }
  check(status === 401, `AI SDK with a wrong key: expected a 401 error, got ${status}`);
  console.log('ok   Vercel AI SDK (openai-compatible provider: embed, embedMany, 401)');
}
console.log(`frameworks: ${checks} checks passed`);
