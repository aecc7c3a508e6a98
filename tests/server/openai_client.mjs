// openai_client.mjs - drives the server with the official openai npm client (exact version in
// package.json). Run by tests/cli/server_openai.sh:
//   node openai_client.mjs PORT KEY DIRECT_JSON IMAGE_FILE SMALL_PORT
// DIRECT_JSON holds the vectors the engine computes directly for the texts below (the reference);
// IMAGE_FILE is a PNG sent as a data: URI; SMALL_PORT is a second server with a slow model and a
// tiny queue, for 429s. Exits 1 on the first failed check.
import OpenAI from 'openai';
import { readFileSync } from 'node:fs';

const [port, key, directFile, imageFile, smallPort] = process.argv.slice(2);
const texts = ['the cat sat', 'a dog', 'hello world'];
const direct = JSON.parse(readFileSync(directFile, 'utf8'));
const baseURL = `http://127.0.0.1:${port}/v1`;
const client = new OpenAI({ apiKey: key, baseURL, maxRetries: 0, timeout: 20000 });
let checks = 0;

function check(cond, msg) {
  if (!cond) {
    console.error(`FAIL: ${msg}`);
    process.exit(1);
  }
  checks++;
}

// float32 of a JS number, to compare bit for bit with the engine's float32 output
const f32 = (x) => Math.fround(x);
const sameVec = (a, b) => a.length === b.length && a.every((x, i) => f32(x) === f32(b[i]));

async function expectError(promise, ErrClass, status, part) {
  try {
    await promise;
  } catch (e) {
    check(e instanceof ErrClass, `expected ${ErrClass.name}, got ${e.constructor.name}: ${e.message}`);
    check(e.status === status, `expected status ${status}, got ${e.status}`);
    if (part) check(JSON.stringify(e.error ?? {}).includes(part) || e.message.includes(part), `error lacks '${part}': ${e.message}`);
    return e;
  }
  check(false, `expected ${ErrClass.name} (${status}), the call succeeded`);
}

// default call: the client asks for base64 and decodes it
const r1 = await client.embeddings.create({ model: 'fake-embed', input: texts });
check(r1.object === 'list' && r1.data.length === 3, 'list of 3');
check(r1.model === 'fake-embed', `model ${r1.model}`);
check(r1.data.every((d, i) => d.object === 'embedding' && d.index === i), 'objects and indexes');
check(r1.data.every((d, i) => sameVec(Array.from(d.embedding), direct[i])), 'base64 default: vectors equal the engine alone');
check(r1.usage.prompt_tokens === r1.usage.total_tokens && r1.usage.prompt_tokens === 16 + 15 + 15, `usage ${JSON.stringify(r1.usage)}`);

// explicit float
const r2 = await client.embeddings.create({ model: 'fake-embed', input: texts, encoding_format: 'float' });
check(r2.data.every((d, i) => Array.isArray(d.embedding) && sameVec(d.embedding, direct[i])), 'float: vectors equal the engine alone');

// one string, dimensions
const r3 = await client.embeddings.create({ model: 'x', input: 'the cat sat', dimensions: 3, encoding_format: 'float' });
const v3 = r3.data[0].embedding;
check(v3.length === 3, 'dimensions=3 gives 3 values');
check(Math.abs(v3.reduce((s, x) => s + x * x, 0) - 1) < 1e-6, 'renormalised');
const dot = v3.reduce((s, x, i) => s + x * direct[0][i], 0) / Math.hypot(...direct[0].slice(0, 3));
check(dot > 0.999999, `same direction as the prefix (${dot})`);

// token ids
const r4 = await client.embeddings.create({ model: 'm', input: [[1, 2, 3], [4]] });
check(r4.data.length === 2 && r4.data[0].embedding.length === 8, 'token-id arrays');
const r5 = await client.embeddings.create({ model: 'm', input: [7, 8, 9] });
check(r5.data.length === 1, 'one token-id array');

// multimodal items pass through the client untouched
const png = readFileSync(imageFile).toString('base64');
const r6 = await client.embeddings.create({
  model: 'm',
  input: [
    { content: [{ type: 'text', text: 'a picture' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }] },
    { text: 'a picture', image: `data:image/png;base64,${png}` },
    'a picture',
  ],
});
check(r6.data.length === 3, 'three multimodal items');
check(sameVec(Array.from(r6.data[0].embedding), Array.from(r6.data[1].embedding)), 'content form = text/image form');
check(!sameVec(Array.from(r6.data[0].embedding), Array.from(r6.data[2].embedding)), 'the image changes the vector');

// models
const models = await client.models.list();
check(models.data.length === 1 && models.data[0].id === 'fake-embed', 'models.list');
const m = await client.models.retrieve('fake-embed');
check(m.id === 'fake-embed' && m.object === 'model', 'models.retrieve');
await expectError(client.models.retrieve('nope'), OpenAI.NotFoundError, 404, 'model_not_found');

// errors arrive as the client's typed errors
const bad = new OpenAI({ apiKey: 'wrong-key', baseURL, maxRetries: 0 });
await expectError(bad.embeddings.create({ model: 'm', input: 'x' }), OpenAI.AuthenticationError, 401, 'invalid_api_key');
const e400 = await expectError(client.embeddings.create({ model: 'm', input: 'x', dimensions: 99 }), OpenAI.BadRequestError, 400, 'dimensions');
check(e400.param === 'dimensions' || e400.error?.param === 'dimensions', `param: ${JSON.stringify(e400.error)}`);
await expectError(client.embeddings.create({ model: 'm', input: [] }), OpenAI.BadRequestError, 400, 'empty');
await expectError(client.embeddings.create({ model: 'm', input: ['ok', 'FAIL: please'] }), OpenAI.BadRequestError, 400, 'input[1]');

// many requests at once, each checked
const many = await Promise.all(
  Array.from({ length: 64 }, (_, i) => client.embeddings.create({ model: 'm', input: texts[i % 3] })),
);
check(many.every((r, i) => sameVec(Array.from(r.data[0].embedding), direct[i % 3])), '64 concurrent requests exact');

// the server's queue limit shows up as the client's RateLimitError
const small = new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${smallPort}/v1`, maxRetries: 0 });
const burst = await Promise.allSettled(
  Array.from({ length: 40 }, () => small.embeddings.create({ model: 'm', input: ['x', 'y', 'z', 'w'] })),
);
const limited = burst.filter((s) => s.status === 'rejected');
check(limited.length > 0, 'some requests of the burst were refused');
check(limited.every((s) => s.reason instanceof OpenAI.RateLimitError && s.reason.status === 429), `refusals are RateLimitError: ${limited.map((s) => s.reason?.status)}`);
check(burst.some((s) => s.status === 'fulfilled'), 'others were served');

const { version } = JSON.parse(readFileSync(new URL('./node_modules/openai/package.json', import.meta.url), 'utf8'));
console.log(`openai ${version} client: ${checks} checks passed`);
