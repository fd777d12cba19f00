// Sign in to the sample app in headless Chromium, add a to-do item, reload, sign out.
//
//   node e2e.mjs BASE_URL ARTIFACTS_DIR [LOGIN]
//
// Adding the item needs the write scope. When the provider's first refresh token
// does not cover it (a stock provider), submitting the form leads to its consent
// page; after consenting the browser lands on the list with the item saved once
// (msal_wsgi kept the form and re-submits it). The back button and a reload
// must not add it again.
//
// BASE_URL is the sample app (e.g. http://localhost:5000); the identity provider
// it redirects to may have any TLS certificate (the test CA is not trusted).
// Prints one JSON object on stdout: {ok, steps, callbacks, items, error?}; each
// step saved ARTIFACTS_DIR/NN-name.png. Exits 1 when a step failed.
// Chromium is Debian's (CHROMIUM or /usr/bin/chromium), driven by playwright-core;
// Playwright's own browser download is never used.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [base, artifacts, login = 'browser-user'] = process.argv.slice(2);
if (!base || !artifacts) {
  console.error('usage: node e2e.mjs BASE_URL ARTIFACTS_DIR [LOGIN]');
  process.exit(2);
}
const ITEM = 'Try msal_wsgi in a real browser';
const STEP_TIMEOUT = 15_000;
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

mkdirSync(artifacts, { recursive: true });
const profile = mkdtempSync(join(tmpdir(), 'msal-wsgi-chromium-'));
const result = { ok: false, steps: [], callbacks: [], items: [], form_posts: [], layout: {} };
let context;
let page;

// What each request to the app's callback carried: the cross-site form_post
// arrives without the SameSite=Lax session cookie, the re-post with it.
function watchCallbacks() {
  context.on('request', async (request) => {
    const url = new URL(request.url());
    if (url.origin !== new URL(base).origin || !url.pathname.endsWith('/auth/callback')) return;
    const entry = { method: request.method(), repost: (request.postData() || '').includes('msal_wsgi_repost=1') };
    result.callbacks.push(entry);
    const headers = await request.allHeaders();  // includes the Cookie header the network stack added
    entry.cookie = /(^|;\s*)msal_wsgi_sample=/.test(headers.cookie || '');
  });
}

// Every POST to the to-do list: the user's own (description=...) or msal_wsgi's re-submission.
function watchFormPosts() {
  context.on('request', (request) => {
    const url = new URL(request.url());
    if (request.method() !== 'POST' || url.origin !== new URL(base).origin || url.pathname !== '/todos') return;
    result.form_posts.push((request.postData() || '').includes('msal_wsgi_replay=') ? 'resubmission' : 'form');
  });
}

async function step(name) {
  const file = join(artifacts, `${String(result.steps.length + 1).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  result.steps.push({ name, url: page.url(), title: await page.title(), screenshot: file });
}

// The page at a desktop's and a phone's width: a screenshot each, and whether it overflows sideways.
async function layout(name) {
  result.layout[name] = {};
  for (const width of [1280, 390]) {
    await page.setViewportSize({ width, height: 800 });
    const file = join(artifacts, `layout-${name}-${width}.png`);
    await page.screenshot({ path: file, fullPage: true });
    const overflows = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    result.layout[name][width] = { screenshot: file, overflows };
  }
  await page.setViewportSize({ width: 900, height: 700 });
}

async function items() {
  return page.locator('#todos li').allTextContents();
}

try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: FLAGS,
    ignoreHTTPSErrors: true,
    viewport: { width: 900, height: 700 },
  });
  context.setDefaultTimeout(STEP_TIMEOUT);
  watchCallbacks();
  watchFormPosts();
  page = context.pages()[0] || await context.newPage();

  const home = await page.goto(`${base}/`);
  result.home_csp = home.headers()['content-security-policy'] || '';
  await step('home');
  await layout('home');

  await page.click('#sign-in');
  await page.waitForSelector('input[name="login"]');
  await step('provider-login');
  await page.fill('input[name="login"]', login);
  await page.fill('input[name="password"]', 'any password');
  await page.click('button[type="submit"]');

  await page.waitForSelector('form input[name="prompt"][value="consent"]', { state: 'attached' });
  await step('provider-consent');
  await page.click('button[type="submit"]');

  await page.waitForURL(`${base}/todos`);
  await page.waitForSelector('#user');
  result.user = (await page.textContent('#user')).trim();
  result.empty_state = await page.isVisible('#empty');
  result.labelled_input = await page.locator('label[for="description"]').count() === 1;
  result.nav_user = (await page.textContent('#signed-in-as')).trim();
  await step('signed-in');

  await page.fill('input[name="description"]', ITEM);
  await page.click('form#add button[type="submit"]');
  const added = page.waitForSelector(`#todos li:has-text("${ITEM}")`).then(() => false);
  const consent = page.waitForSelector('form input[name="prompt"][value="consent"]', { state: 'attached' })
    .then(() => true);
  added.catch(() => {});
  consent.catch(() => {});
  result.consented_to_write = await Promise.race([added, consent]);
  if (result.consented_to_write) {
    await step('provider-consent-to-write');
    await page.click('button[type="submit"]');
    await page.waitForSelector(`#todos li:has-text("${ITEM}")`);
  }
  await step('item-added');
  result.items_after_add = await items();

  await page.reload();
  await page.waitForSelector('#user');
  result.items = await items();
  await step('reloaded');
  await layout('todos');

  await page.goBack().catch(() => {});  // to the page before the list: a re-submission page, a POST result
  await page.goto(`${base}/todos`);
  await page.waitForSelector('#user');
  result.items_after_back = await items();

  await page.click('#sign-out');  // the sample's Sign out: a form button, POSTing to /auth/logout
  await page.waitForSelector('#op\\.logoutForm', { state: 'attached' });
  await step('provider-sign-out');
  await page.click('button[name="logout"][value="yes"]');
  await page.waitForURL(`${base}/`);
  await step('signed-out');

  await page.goto(`${base}/todos`);
  await page.waitForSelector('input[name="login"]');
  result.signed_out_redirect = page.url();
  await step('todos-needs-sign-in-again');

  result.ok = true;
} catch (error) {
  result.error = String(error && error.stack ? error.stack : error);
  if (page) {
    await step('failed').catch(() => {});
  }
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}

console.log(JSON.stringify(result, null, 2));
process.exit(result.ok ? 0 : 1);
