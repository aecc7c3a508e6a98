// ui_test.mjs - the /ui playground in Debian's Chromium, driven by playwright-core:
//   node ui_test.mjs PORT KEY GOOD_IMAGE BAD_IMAGE SCREENSHOT
// Loads the page, types the key, adds two identical texts, a different text, a photo and a
// malformed image, embeds them, and checks from the DOM: token counts and times, the similarity
// matrix (diagonal 1.00, identical texts 1.00, different items below), the ranking of a query
// (the identical texts first, at 1.000), and the bad image's error message. Saves a screenshot.
import { chromium } from 'playwright-core';

const [port, key, goodImage, badImage, shot] = process.argv.slice(2);
let checks = 0;
function check(cond, msg) {
  if (!cond) throw new Error(msg);
  checks++;
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(e.message));
  await page.goto(`http://127.0.0.1:${port}/ui`);
  check((await page.title()) === 'tkr-embed playground', 'page title');
  await page.fill('#api-key', key);
  await page.dispatchEvent('#api-key', 'change');
  await page.waitForFunction(() => document.querySelector('#model-name').textContent === 'm1');
  const addText = async (t) => { await page.fill('#text-input', t); await page.click('#add-text'); };
  await addText('a cat sleeping on a red sofa');
  await addText('a cat sleeping on a red sofa');
  await addText('quarterly results of the stock market');
  await page.fill('#text-input', '');
  await page.setInputFiles('#file-input', goodImage);
  await page.waitForFunction(() => document.querySelectorAll('#items .item').length === 4);
  await page.setInputFiles('#file-input', badImage);
  await page.waitForFunction(() => document.querySelectorAll('#items .item').length === 5);
  await page.click('#embed-all');
  await page.waitForFunction(() => [...document.querySelectorAll('#items .item')]
    .every((el) => el.querySelector('.item-tokens') || el.querySelector('.item-error')), null, { timeout: 60000 });

  const items = await page.$$eval('#items .item', (els) => els.map((el) => ({
    id: el.dataset.id,
    tokens: el.querySelector('.item-tokens')?.textContent ?? null,
    ms: el.querySelector('.item-time')?.textContent ?? null,
    error: el.querySelector('.item-error')?.textContent ?? null,
  })));
  for (const it of items.slice(0, 4)) {
    check(it.error === null && Number(it.tokens) > 0 && Number(it.ms) >= 0, `item ${it.id} embedded: ${JSON.stringify(it)}`);
  }
  check(Number(items[0].tokens) === Number(items[1].tokens), 'identical texts, identical token counts');
  check(Number(items[3].tokens) > 256, `the photo is at least 256 image tokens (${items[3].tokens})`);
  check(items[4].error && items[4].error.length > 10 && items[4].tokens === null,
    `the malformed image shows an error: ${JSON.stringify(items[4])}`);

  const cell = (a, b) => page.$eval(`#matrix td[data-a="${a}"][data-b="${b}"]`, (td) => Number(td.textContent));
  for (const i of [1, 2, 3, 4]) check(Math.abs((await cell(i, i)) - 1) < 0.005, `diagonal ${i} is 1.00`);
  check(Math.abs((await cell(1, 2)) - 1) < 0.005, 'identical texts have similarity 1.00');
  check((await cell(1, 3)) < 0.999 && (await cell(1, 4)) < 0.999, 'different items are below 1');
  check(Math.abs((await cell(1, 3)) - (await cell(3, 1))) < 1e-9, 'the matrix is symmetric');
  check((await page.$$('#matrix td')).length === 16, 'a 4x4 matrix (the failed item is left out)');

  await page.fill('#query-input', 'a cat sleeping on a red sofa');
  await page.click('#rank');
  await page.waitForFunction(() => document.querySelectorAll('#rank-results li').length === 4);
  const ranked = await page.$$eval('#rank-results li', (els) => els.map((el) => ({
    id: el.dataset.id, score: Number(el.querySelector('.score').textContent) })));
  check(new Set([ranked[0].id, ranked[1].id]).size === 2 && ['1', '2'].includes(ranked[0].id) &&
        ['1', '2'].includes(ranked[1].id), `the identical texts rank first: ${JSON.stringify(ranked)}`);
  check(Math.abs(ranked[0].score - 1) < 0.0005, `the query matches them at 1.000: ${ranked[0].score}`);
  check(ranked.every((r, i) => i === 0 || ranked[i - 1].score >= r.score), 'scores are sorted');

  // a wrong key: the page shows the server's 401 message
  await page.fill('#api-key', 'wrong-key');
  await page.dispatchEvent('#api-key', 'change');
  await page.click('#rank');
  await page.waitForFunction(() => document.querySelector('#query-status .item-error'));
  const authMsg = await page.textContent('#query-status');
  check(/API key/i.test(authMsg), `a wrong key shows the server's message: ${authMsg}`);
  check(consoleErrors.length === 0, `no script errors: ${consoleErrors.join('; ')}`);
  await page.fill('#api-key', key);
  await page.dispatchEvent('#api-key', 'change');
  await page.click('#rank');
  await page.waitForFunction(() => document.querySelectorAll('#rank-results li').length === 4);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`ui: ${checks} checks passed; screenshot ${shot}`);
} finally {
  await browser.close();
}
