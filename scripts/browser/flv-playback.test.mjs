// Headless Chromium plays a relay's HTTP-FLV stream through mpegts.js and checks what a viewer
// would see: frames decoded and presented, the clock advancing, the published picture size;
// and that a stream that does not exist ends in a player error instead of a spinner.
//
//   node flv-playback.test.mjs --flv URL --missing URL --width 640 --height 360 [--out DIR]
//        [--ttff-runs N]   (N more page loads to report the median time to first frame)
//
// Prints one PASS/FAIL line per check and a summary line; exits 1 on failure.
// Chromium is the system one (/usr/bin/chromium, or $CHROMIUM): nothing is downloaded.
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startPlayerServer } from './serve.mjs';

const { values: opt } = parseArgs({
  options: {
    flv: { type: 'string' },
    missing: { type: 'string' },
    width: { type: 'string', default: '640' },
    height: { type: 'string', default: '360' },
    frames: { type: 'string', default: '30' },
    out: { type: 'string' },
    'timeout-ms': { type: 'string', default: '30000' },
    'ttff-runs': { type: 'string', default: '0' },
  },
});
if (!opt.flv || !opt.missing) {
  console.error('usage: node flv-playback.test.mjs --flv URL --missing URL [--width W --height H --out DIR]');
  process.exit(2);
}
const want = { width: Number(opt.width), height: Number(opt.height), frames: Number(opt.frames) };
const timeoutMs = Number(opt['timeout-ms']);
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

let passed = 0;
let failed = 0;
function check(ok, name, detail = '') {
  if (ok) passed++;
  else failed++;
  console.log(`${ok ? 'PASS' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
  return ok;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** What the page knows about playback, read in one round trip. */
const readState = (page) =>
  page.evaluate(() => {
    const v = document.getElementById('video');
    const q = v.getVideoPlaybackQuality ? v.getVideoPlaybackQuality() : null;
    const s = window.surge;
    return {
      currentTime: v.currentTime,
      totalVideoFrames: q ? q.totalVideoFrames : null,
      droppedVideoFrames: q ? q.droppedVideoFrames : null,
      videoWidth: v.videoWidth,
      videoHeight: v.videoHeight,
      paused: v.paused,
      bufferedEnd: v.buffered.length ? v.buffered.end(v.buffered.length - 1) : null,
      supported: s.supported,
      firstFrameMs: s.firstFrameMs,
      loadCalledMs: s.loadCalledMs,
      errors: s.errors,
      events: s.events,
    };
  });

/**
 * Samples the current video frame on a 64x36 grid (through a canvas, as a page would) and
 * returns the share of samples in each colour bar of ffmpeg's testsrc2 plus the raw samples.
 */
const sampleFrame = (page) =>
  page.evaluate(() => {
    const v = document.getElementById('video');
    const c = document.createElement('canvas');
    c.width = 64;
    c.height = 36;
    const g = c.getContext('2d', { willReadFrequently: true });
    g.drawImage(v, 0, 0, c.width, c.height);
    const px = g.getImageData(0, 0, c.width, c.height).data;
    const hi = (x) => x > 170;
    const lo = (x) => x < 90;
    const bars = { red: 0, green: 0, yellow: 0, blue: 0, magenta: 0, cyan: 0 };
    const n = px.length / 4;
    for (let i = 0; i < px.length; i += 4) {
      const [r, gr, b] = [px[i], px[i + 1], px[i + 2]];
      if (hi(r) && lo(gr) && lo(b)) bars.red++;
      else if (lo(r) && hi(gr) && lo(b)) bars.green++;
      else if (hi(r) && hi(gr) && lo(b)) bars.yellow++;
      else if (lo(r) && lo(gr) && hi(b)) bars.blue++;
      else if (hi(r) && lo(gr) && hi(b)) bars.magenta++;
      else if (lo(r) && hi(gr) && hi(b)) bars.cyan++;
    }
    for (const k of Object.keys(bars)) bars[k] = Math.round((bars[k] / n) * 1000) / 1000;
    return { bars, samples: Array.from(px) };
  });

/** Share of grid samples whose colour changed by more than a little between two samples. */
function changedShare(a, b) {
  let changed = 0;
  for (let i = 0; i < a.length; i += 4) {
    const d = Math.abs(a[i] - b[i]) + Math.abs(a[i + 1] - b[i + 1]) + Math.abs(a[i + 2] - b[i + 2]);
    if (d > 60) changed++;
  }
  return changed / (a.length / 4);
}

async function playsLiveStream(context, playerUrl) {
  const page = await context.newPage();
  const consoleErrors = [];
  page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()));
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  await page.goto(`${playerUrl}?src=${encodeURIComponent(opt.flv)}`);
  const deadline = Date.now() + timeoutMs;
  let s = await readState(page);
  check(s.supported === true, 'mpegts.js reports MSE live playback supported in Chromium');
  // Wait until enough frames were decoded and the picture size is known.
  while (Date.now() < deadline && !(s.totalVideoFrames > want.frames && s.videoWidth > 0) && s.errors.length === 0) {
    await sleep(200);
    s = await readState(page);
  }
  check(s.errors.length === 0, 'no player error while playing', s.errors.length ? JSON.stringify(s.errors) : '');
  check(s.totalVideoFrames > want.frames, `decoded frames grow past ${want.frames}`, `totalVideoFrames=${s.totalVideoFrames}`);
  check(
    s.videoWidth === want.width && s.videoHeight === want.height,
    `picture size is the published ${want.width}x${want.height}`,
    `videoWidth x videoHeight = ${s.videoWidth}x${s.videoHeight}`,
  );
  const firstFrame = s.firstFrameMs;
  check(
    firstFrame !== null,
    'first frame presented',
    firstFrame === null
      ? 'never'
      : `time to first frame ${Math.round(firstFrame)} ms from page navigation, ${Math.round(firstFrame - s.loadCalledMs)} ms after player.load()`,
  );

  // The decoded picture is the published test pattern, not black or garbage.
  const frameA = await sampleFrame(page);
  const missingBars = Object.entries(frameA.bars).filter(([, share]) => share < 0.05).map(([k]) => k);
  check(missingBars.length === 0, 'the picture shows the six colour bars of the published test pattern',
    `share of samples per bar ${JSON.stringify(frameA.bars)}`);

  // The playhead must keep moving at about real time: a frozen picture also has a size.
  const t0 = { wall: Date.now(), media: s.currentTime, frames: s.totalVideoFrames };
  await sleep(3000);
  s = await readState(page);
  const frameB = await sampleFrame(page);
  const moved = changedShare(frameA.samples, frameB.samples);
  check(moved > 0.005, 'the picture changes over time (moving parts of the pattern)',
    `${(moved * 100).toFixed(1)}% of samples changed in 3 s`);
  const wall = (Date.now() - t0.wall) / 1000;
  const media = s.currentTime - t0.media;
  // Upper bound: real time, plus one jump to the live edge if mpegts.js chases latency.
  check(
    media > 0.6 * wall && media < 1.2 * wall + 2,
    'currentTime advances at about real time',
    `${media.toFixed(2)} s of media in ${wall.toFixed(2)} s wall, ${s.totalVideoFrames - t0.frames} frames more, dropped ${s.droppedVideoFrames}`,
  );
  const behind = s.bufferedEnd !== null ? s.bufferedEnd - s.currentTime : null;
  console.log(`INFO playhead ${behind === null ? '?' : behind.toFixed(2)} s behind the newest buffered media`);
  check(s.errors.length === 0, 'still no player error after 3 s more', s.errors.length ? JSON.stringify(s.errors) : '');

  if (opt.out) {
    const shot = join(opt.out, 'browser-playback.png');
    await page.locator('#video').screenshot({ path: shot });
    console.log(`INFO screenshot ${shot}`);
  }
  const stalls = s.events.filter((e) => e.kind === 'waiting' && e.t > s.firstFrameMs).length;
  console.log(`INFO ${stalls} stalls ('waiting' events) after the first frame`);
  if (consoleErrors.length) console.log(`INFO page console errors: ${JSON.stringify(consoleErrors.slice(0, 5))}`);
  await page.close();
  return { firstFrameMs: firstFrame, afterLoadMs: firstFrame === null ? null : firstFrame - s.loadCalledMs };
}

/** Loads the page afresh `runs` times; returns first-frame times (navigation, after load()). */
async function timeToFirstFrame(context, playerUrl, runs) {
  const fromNav = [];
  const fromLoad = [];
  for (let i = 0; i < runs; i++) {
    const page = await context.newPage();
    await page.goto(`${playerUrl}?src=${encodeURIComponent(opt.flv)}`);
    const handle = await page.waitForFunction(() => window.surge.firstFrameMs !== null || window.surge.errors.length > 0,
      null, { timeout: timeoutMs, polling: 20 });
    await handle.dispose();
    const s = await readState(page);
    await page.close();
    if (s.firstFrameMs === null) return { error: JSON.stringify(s.errors) };
    fromNav.push(s.firstFrameMs);
    fromLoad.push(s.firstFrameMs - s.loadCalledMs);
  }
  return { fromNav, fromLoad };
}

const stat = (xs) => {
  const v = [...xs].sort((a, b) => a - b);
  return { min: Math.round(v[0]), median: Math.round(v[Math.floor((v.length - 1) / 2)]), max: Math.round(v[v.length - 1]) };
};

async function missingStreamErrors(context, playerUrl) {
  const page = await context.newPage();
  // The raw response as Chromium's network stack saw it, also when CORS hides it from the page.
  const raw = [];
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  const urls = new Map();
  cdp.on('Network.requestWillBeSent', (e) => urls.set(e.requestId, e.request.url));
  cdp.on('Network.responseReceivedExtraInfo', (e) => raw.push({ id: e.requestId, status: e.statusCode, headers: e.headers }));
  const started = Date.now();
  await page.goto(`${playerUrl}?src=${encodeURIComponent(opt.missing)}`);
  let s = await readState(page);
  while (Date.now() - started < 10000 && s.errors.length === 0) {
    await sleep(100);
    s = await readState(page);
  }
  const ms = Date.now() - started;
  const e = s.errors[0];
  check(e !== undefined, 'missing stream: player raises an error event instead of hanging',
    e ? `${ms} ms, ${e.type}/${e.detail} ${JSON.stringify(e.info)}` : `no error within ${ms} ms`);
  const answer = raw.find((r) => urls.get(r.id) === opt.missing);
  check(answer?.status === 404, 'missing stream: the relay answered 404', answer ? `status ${answer.status}` : 'no response seen');
  const header = (name) => Object.entries(answer?.headers ?? {}).find(([k]) => k.toLowerCase() === name)?.[1];
  const sawCode = e !== undefined && e.detail === 'HttpStatusCodeInvalid' && e.info?.code === 404;
  if (answer && header('access-control-allow-origin') === undefined && !sawCode) {
    // Without the CORS header Chromium hides the status from the page: mpegts.js reports a
    // failed fetch, which a page cannot tell apart from a relay that is down.
    console.log('WARN missing stream: the 404 carries no Access-Control-Allow-Origin, so the player sees '
      + `"${e?.info?.msg ?? 'no error'}" instead of HTTP 404 (stream offline vs relay down is not distinguishable)`);
  } else {
    check(sawCode, 'missing stream: the player error carries HTTP status 404',
      e ? `${e.type}/${e.detail} code=${e.info?.code}` : 'no error');
  }
  check(s.firstFrameMs === null, 'missing stream: no frame presented');
  await page.close();
}

const userDataDir = await mkdtemp(join(tmpdir(), 'surge-chromium-'));
const { server, url: playerUrl } = await startPlayerServer(0);
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    timeout: 30000,
    viewport: { width: 800, height: 600 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  console.log(`INFO chromium ${context.browser()?.version() ?? '(version unknown)'} from ${executablePath}; player page ${playerUrl}`);
  const live = await playsLiveStream(context, playerUrl);
  await missingStreamErrors(context, playerUrl);
  if (live.firstFrameMs !== null) {
    console.log(`RESULT first load: time_to_first_frame_ms=${Math.round(live.firstFrameMs)} after_player_load_ms=${Math.round(live.afterLoadMs)}`);
  }
  const runs = Number(opt['ttff-runs']);
  if (runs > 0) {
    const t = await timeToFirstFrame(context, playerUrl, runs);
    if (check(!t.error, `first frame on each of ${runs} more page loads`, t.error ?? '')) {
      const nav = stat(t.fromNav);
      const load = stat(t.fromLoad);
      console.log(`RESULT ${runs} reloads: time_to_first_frame_ms min=${nav.min} median=${nav.median} max=${nav.max}; `
        + `after_player_load_ms min=${load.min} median=${load.median} max=${load.max}`);
    }
  }
} catch (err) {
  check(false, 'browser run', err?.stack || String(err));
} finally {
  await context?.close().catch(() => {});
  server.close();
  await rm(userDataDir, { recursive: true, force: true }).catch(() => {});
}
console.log(failed === 0 ? `browser-flv: all ${passed} checks passed` : `browser-flv: ${failed} of ${passed + failed} checks failed`);
process.exit(failed === 0 ? 0 : 1);
