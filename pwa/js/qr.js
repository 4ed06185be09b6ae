// A small QR code reader for the pairing screen where the browser has no BarcodeDetector
// (iOS Safari, desktop Chromium). Written from ISO/IEC 18004: finder patterns -> grid sampling
// (affine from the three finders, refined by the alignment pattern) -> format info -> unmask ->
// codewords -> Reed-Solomon correction -> numeric / alphanumeric / byte segments.
// Versions 1-10 (up to 271 bytes): a pairing token needs version 4.

// ---------- Galois field GF(256), primitive polynomial 0x11d ----------
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255];
}
const mul = (a, b) => (a && b ? EXP[LOG[a] + LOG[b]] : 0);
const div = (a, b) => (a ? EXP[(LOG[a] + 255 - LOG[b]) % 255] : 0);

// Correct one block in place (data followed by `ec` EC codewords); false when beyond repair.
// Syndromes with roots alpha^0..alpha^(ec-1), Berlekamp-Massey, Chien search, Forney.
export function rsCorrect(block, ec) {
  const n = block.length;
  const synd = new Uint8Array(ec);
  let bad = false;
  for (let i = 0; i < ec; i++) {
    let s = 0;
    for (let k = 0; k < n; k++) s = mul(s, EXP[i]) ^ block[k];
    synd[i] = s;
    if (s) bad = true;
  }
  if (!bad) return true;
  // Berlekamp-Massey: error locator sigma(x), lowest degree first.
  let sigma = [1];
  let prev = [1];
  let L = 0;
  let m = 1;
  let b = 1;
  for (let r = 0; r < ec; r++) {
    let d = synd[r];
    for (let i = 1; i <= L; i++) d ^= mul(sigma[i] || 0, synd[r - i]);
    if (d === 0) {
      m++;
      continue;
    }
    const coef = div(d, b);
    const next = sigma.slice();
    for (let i = 0; i < prev.length; i++) {
      next[i + m] = (next[i + m] || 0) ^ mul(coef, prev[i]);
    }
    if (2 * L <= r) {
      prev = sigma;
      L = r + 1 - L;
      b = d;
      m = 1;
    } else {
      m++;
    }
    sigma = next;
  }
  if (L * 2 > ec) return false;
  // Chien search: positions p (power of alpha counted from the last codeword) with
  // sigma(alpha^-p) = 0.
  const positions = [];
  for (let p = 0; p < n; p++) {
    const xinv = EXP[(255 - p) % 255];
    let v = 0;
    for (let i = sigma.length - 1; i >= 0; i--) v = mul(v, xinv) ^ (sigma[i] || 0);
    if (v === 0) positions.push(p);
  }
  if (positions.length !== L) return false;
  // Forney (first root alpha^0): e = X * omega(X^-1) / sigma'(X^-1),
  // omega(x) = S(x) * sigma(x) mod x^ec.
  const omega = new Uint8Array(ec);
  for (let i = 0; i < ec; i++) {
    let v = 0;
    for (let j = 0; j <= i && j < sigma.length; j++) v ^= mul(sigma[j] || 0, synd[i - j]);
    omega[i] = v;
  }
  for (const p of positions) {
    const x = EXP[p % 255];
    const xinv = EXP[(255 - p) % 255];
    let num = 0;
    for (let i = ec - 1; i >= 0; i--) num = mul(num, xinv) ^ omega[i];
    let den = 0; // sigma'(x): odd terms only in characteristic 2
    for (let i = 1; i < sigma.length; i += 2) {
      den ^= mul(sigma[i] || 0, EXP[(LOG[xinv] * (i - 1)) % 255]);
    }
    if (!den) return false;
    block[n - 1 - p] ^= mul(x, div(num, den));
  }
  for (let i = 0; i < ec; i++) {
    let s = 0;
    for (let k = 0; k < n; k++) s = mul(s, EXP[i]) ^ block[k];
    if (s) return false;
  }
  return true;
}

// ---------- code structure, versions 1-10 ----------
// [ec codewords per block, [blocks, data codewords], ...] per version, levels in L, M, Q, H order.
const BLOCKS = [
  null,
  [[7, [1, 19]], [10, [1, 16]], [13, [1, 13]], [17, [1, 9]]],
  [[10, [1, 34]], [16, [1, 28]], [22, [1, 22]], [28, [1, 16]]],
  [[15, [1, 55]], [26, [1, 44]], [18, [2, 17]], [22, [2, 13]]],
  [[20, [1, 80]], [18, [2, 32]], [26, [2, 24]], [16, [4, 9]]],
  [[26, [1, 108]], [24, [2, 43]], [18, [2, 15], [2, 16]], [22, [2, 11], [2, 12]]],
  [[18, [2, 68]], [16, [4, 27]], [24, [4, 19]], [28, [4, 15]]],
  [[20, [2, 78]], [18, [4, 31]], [18, [2, 14], [4, 15]], [26, [4, 13], [1, 14]]],
  [[24, [2, 97]], [22, [2, 38], [2, 39]], [22, [4, 18], [2, 19]], [26, [4, 14], [2, 15]]],
  [[30, [2, 116]], [22, [3, 36], [2, 37]], [20, [4, 16], [4, 17]], [24, [4, 12], [4, 13]]],
  [[18, [2, 68], [2, 69]], [26, [4, 43], [1, 44]], [24, [6, 19], [2, 20]], [28, [6, 15], [2, 16]]],
];
const ALIGN = [null, [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34], [6, 22, 38], [6, 24, 42],
  [6, 26, 46], [6, 28, 50]];
// Format bits' EC level field (01 L, 00 M, 11 Q, 10 H) -> index into BLOCKS rows.
const LEVEL_INDEX = [1, 0, 3, 2];

const FORMATS = []; // [15-bit masked format word, level index, mask]
for (let data = 0; data < 32; data++) {
  let rem = data << 10;
  for (let i = 14; i >= 10; i--) if (rem & (1 << i)) rem ^= 0x537 << (i - 10);
  FORMATS.push([((data << 10) | rem) ^ 0x5412, LEVEL_INDEX[data >> 3], data & 7]);
}

function isFunction(version, dim, r, c) {
  if ((r < 9 && c < 9) || (r < 9 && c >= dim - 8) || (r >= dim - 8 && c < 9)) return true;
  if (r === 6 || c === 6) return true;
  if (version >= 7 && ((r < 6 && c >= dim - 11) || (c < 6 && r >= dim - 11))) {
    return true;
  }
  const a = ALIGN[version];
  for (const ar of a) {
    for (const ac of a) {
      if ((ar === 6 && ac === 6) || (ar === 6 && ac === a[a.length - 1])
          || (ar === a[a.length - 1] && ac === 6)) continue;
      if (Math.abs(r - ar) <= 2 && Math.abs(c - ac) <= 2) return true;
    }
  }
  return false;
}

const MASKS = [
  (i, j) => (i + j) % 2 === 0,
  (i) => i % 2 === 0,
  (i, j) => j % 3 === 0,
  (i, j) => (i + j) % 3 === 0,
  (i, j) => (Math.floor(i / 2) + Math.floor(j / 3)) % 2 === 0,
  (i, j) => ((i * j) % 2) + ((i * j) % 3) === 0,
  (i, j) => (((i * j) % 2) + ((i * j) % 3)) % 2 === 0,
  (i, j) => (((i + j) % 2) + ((i * j) % 3)) % 2 === 0,
];

function readFormat(get, dim) {
  let a = 0;
  for (let c = 0; c <= 5; c++) a = (a << 1) | get(8, c);
  a = (a << 1) | get(8, 7);
  a = (a << 1) | get(8, 8);
  a = (a << 1) | get(7, 8);
  for (let r = 5; r >= 0; r--) a = (a << 1) | get(r, 8);
  let b = 0;
  for (let r = dim - 1; r >= dim - 7; r--) b = (b << 1) | get(r, 8);
  for (let c = dim - 8; c < dim; c++) b = (b << 1) | get(8, c);
  let best = null;
  let bestDist = 4;
  for (const f of FORMATS) {
    for (const word of [a, b]) {
      let x = f[0] ^ word;
      let d = 0;
      for (; x; x &= x - 1) d++;
      if (d < bestDist) {
        bestDist = d;
        best = f;
      }
    }
  }
  return best;
}

// Decode a module matrix: get(r, c) -> 1 dark / 0 light. Returns the text or null.
export function decodeMatrix(get, dim) {
  const version = (dim - 17) / 4;
  if (!Number.isInteger(version) || version < 1 || version > 10) return null;
  const format = readFormat(get, dim);
  if (!format) return null;
  const [, level, maskIndex] = format;
  const mask = MASKS[maskIndex];
  const bits = [];
  let up = true;
  for (let j = dim - 1; j > 0; j -= 2) {
    if (j === 6) j--;
    for (let k = 0; k < dim; k++) {
      const i = up ? dim - 1 - k : k;
      for (let x = 0; x < 2; x++) {
        const c = j - x;
        if (!isFunction(version, dim, i, c)) bits.push(get(i, c) ^ (mask(i, c) ? 1 : 0));
      }
    }
    up = !up;
  }
  const raw = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) {
    let v = 0;
    for (let k = 0; k < 8; k++) v = (v << 1) | bits[i + k];
    raw.push(v);
  }
  const [ec, ...groups] = BLOCKS[version][level];
  const blocks = [];
  for (const [count, data] of groups) for (let i = 0; i < count; i++) blocks.push({ data, cw: [] });
  const maxData = Math.max(...blocks.map((bl) => bl.data));
  let p = 0;
  for (let i = 0; i < maxData; i++) for (const bl of blocks) if (i < bl.data) bl.cw.push(raw[p++]);
  for (let i = 0; i < ec; i++) for (const bl of blocks) bl.cw.push(raw[p++]);
  const data = [];
  for (const bl of blocks) {
    const cw = Uint8Array.from(bl.cw);
    if (!rsCorrect(cw, ec)) return null;
    data.push(...cw.slice(0, bl.data));
  }
  return decodeSegments(data, version);
}

const ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

function decodeSegments(bytes, version) {
  let pos = 0;
  const take = (n) => {
    let v = 0;
    for (let i = 0; i < n; i++, pos++) {
      v = (v << 1) | ((bytes[pos >> 3] >> (7 - (pos & 7))) & 1);
    }
    return v;
  };
  const total = bytes.length * 8;
  const raw = [];
  const digits = (n, width) => {
    for (const ch of String(n).padStart(width, "0")) raw.push(ch.charCodeAt(0));
  };
  while (pos + 4 <= total) {
    const mode = take(4);
    if (mode === 0) break;
    if (mode === 4) {
      const n = take(version < 10 ? 8 : 16);
      for (let i = 0; i < n; i++) raw.push(take(8));
    } else if (mode === 2) {
      let n = take(version < 10 ? 9 : 11);
      for (; n >= 2; n -= 2) {
        const v = take(11);
        raw.push(ALNUM.charCodeAt(Math.floor(v / 45)), ALNUM.charCodeAt(v % 45));
      }
      if (n) raw.push(ALNUM.charCodeAt(take(6)));
    } else if (mode === 1) {
      let n = take(version < 10 ? 10 : 12);
      for (; n >= 3; n -= 3) digits(take(10), 3);
      if (n === 2) digits(take(7), 2);
      if (n === 1) digits(take(4), 1);
    } else if (mode === 7) {
      take(8); // ECI designator: the text is read as UTF-8 anyway
    } else {
      return null;
    }
  }
  return new TextDecoder().decode(Uint8Array.from(raw));
}

// ---------- locating the code in a picture ----------
function binarize(gray, w, h) {
  // Local mean threshold (integral image), window ~1/8 of the picture.
  const integral = new Float64Array((w + 1) * (h + 1));
  for (let y = 0; y < h; y++) {
    let row = 0;
    for (let x = 0; x < w; x++) {
      row += gray[y * w + x];
      integral[(y + 1) * (w + 1) + x + 1] = integral[y * (w + 1) + x + 1] + row;
    }
  }
  const half = Math.max(8, Math.round(Math.min(w, h) / 16));
  const out = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const y0 = Math.max(0, y - half);
    const y1 = Math.min(h, y + half + 1);
    for (let x = 0; x < w; x++) {
      const x0 = Math.max(0, x - half);
      const x1 = Math.min(w, x + half + 1);
      const sum = integral[y1 * (w + 1) + x1] - integral[y0 * (w + 1) + x1]
        - integral[y1 * (w + 1) + x0] + integral[y0 * (w + 1) + x0];
      const mean = sum / ((x1 - x0) * (y1 - y0));
      out[y * w + x] = gray[y * w + x] < mean - 4 ? 1 : 0;
    }
  }
  return out;
}

function ratioOk(runs) {
  const total = runs.reduce((s, v) => s + v, 0);
  if (total < 7) return false;
  const u = total / 7;
  const tol = u * 0.5 + 1; // + 1 px: runs are whole pixels
  return Math.abs(runs[0] - u) < tol && Math.abs(runs[1] - u) < tol
    && Math.abs(runs[2] - 3 * u) < 3 * tol && Math.abs(runs[3] - u) < tol
    && Math.abs(runs[4] - u) < tol;
}

// Runs of the 1:1:3:1:1 pattern through (cx, cy) along (dx, dy); returns [centre offset, size].
function crossCheck(bin, w, h, cx, cy, dx, dy) {
  const at = (k) => {
    const x = Math.round(cx + dx * k);
    const y = Math.round(cy + dy * k);
    return x >= 0 && y >= 0 && x < w && y < h ? bin[y * w + x] : -1;
  };
  if (at(0) !== 1) return null;
  const runs = [0, 0, 0, 0, 0];
  let k = 0;
  for (; at(k) === 1; k--) runs[2]++;
  for (; at(k) === 0; k--) runs[1]++;
  for (; at(k) === 1; k--) runs[0]++;
  let k2 = 1;
  for (; at(k2) === 1; k2++) runs[2]++;
  for (; at(k2) === 0; k2++) runs[3]++;
  for (; at(k2) === 1; k2++) runs[4]++;
  if (!ratioOk(runs)) return null;
  const start = k + 1 + runs[0] + runs[1];
  return [start + runs[2] / 2 - 0.5, runs.reduce((s, v) => s + v, 0)];
}

function findFinders(bin, w, h) {
  const found = [];
  const starts = new Int32Array(w + 2); // x where each run of equal pixels starts
  const lens = [0, 0, 0, 0, 0];
  // Every second row: a finder is at least 7 modules (>= 14 px here) tall.
  for (let y = 0; y < h; y += 2) {
    let n = 0;
    const row = y * w;
    for (let x = 0; x < w; x++) if (x === 0 || bin[row + x] !== bin[row + x - 1]) starts[n++] = x;
    starts[n] = w;
    for (let i = 0; i + 5 <= n; i++) {
      if (bin[row + starts[i]] !== 1) continue;
      for (let k = 0; k < 5; k++) lens[k] = starts[i + k + 1] - starts[i + k];
      if (!ratioOk(lens)) continue;
      let cx = starts[i + 2] + lens[2] / 2 - 0.5;
      const v = crossCheck(bin, w, h, cx, y, 0, 1);
      if (!v) continue;
      const cy = y + v[0];
      const hcheck = crossCheck(bin, w, h, cx, cy, 1, 0);
      if (!hcheck) continue;
      if (Math.abs(hcheck[1] - v[1]) > 0.4 * Math.max(hcheck[1], v[1])) continue;
      cx += hcheck[0];
      const size = (hcheck[1] + v[1]) / 2;
      const near = found.find((f) => Math.hypot(f.x - cx, f.y - cy) < size / 2);
      if (near) {
        near.x = (near.x * near.n + cx) / (near.n + 1);
        near.y = (near.y * near.n + cy) / (near.n + 1);
        near.size = (near.size * near.n + size) / (near.n + 1);
        near.n++;
      } else {
        found.push({ x: cx, y: cy, size, n: 1 });
      }
    }
  }
  return found.filter((f) => f.n >= 2).sort((a, b) => b.n - a.n);
}

// The three finders as top-left, top-right, bottom-left.
function orderFinders(f) {
  const d = (a, b) => Math.hypot(a.x - b.x, a.y - b.y);
  const [a, b, c] = f;
  let tl;
  let p;
  let q;
  const ab = d(a, b);
  const ac = d(a, c);
  const bc = d(b, c);
  if (bc >= ab && bc >= ac) [tl, p, q] = [a, b, c];
  else if (ac >= ab) [tl, p, q] = [b, a, c];
  else [tl, p, q] = [c, a, b];
  const cross = (p.x - tl.x) * (q.y - tl.y) - (p.y - tl.y) * (q.x - tl.x);
  return cross > 0 ? [tl, p, q] : [tl, q, p];
}

// Decode the first QR code found in an RGBA ImageData-like {data, width, height}.
export function decodeQr(image) {
  const { data, width: w, height: h } = image;
  const gray = new Uint8Array(w * h);
  for (let i = 0; i < w * h; i++) {
    gray[i] = (data[4 * i] * 77 + data[4 * i + 1] * 150 + data[4 * i + 2] * 29) >> 8;
  }
  const bin = binarize(gray, w, h);
  // Dark-on-light first, then light-on-dark (a QR shown by a terminal may be inverted).
  for (const invert of [false, true]) {
    const b = invert ? bin.map((v) => v ^ 1) : bin;
    const finders = findFinders(b, w, h).slice(0, 5);
    for (let i = 0; i < finders.length; i++) {
      for (let j = i + 1; j < finders.length; j++) {
        for (let k = j + 1; k < finders.length; k++) {
          const text = tryTriple(b, w, h, orderFinders([finders[i], finders[j], finders[k]]));
          if (text !== null) return text;
        }
      }
    }
  }
  return null;
}

// Homography mapping four source points onto four destination points (h33 = 1).
function homography(src, dst) {
  const A = [];
  for (let i = 0; i < 4; i++) {
    const [x, y] = src[i];
    const [u, v] = dst[i];
    A.push([x, y, 1, 0, 0, 0, -u * x, -u * y, u]);
    A.push([0, 0, 0, x, y, 1, -v * x, -v * y, v]);
  }
  for (let c = 0; c < 8; c++) {
    let piv = c;
    for (let r = c + 1; r < 8; r++) if (Math.abs(A[r][c]) > Math.abs(A[piv][c])) piv = r;
    [A[c], A[piv]] = [A[piv], A[c]];
    if (Math.abs(A[c][c]) < 1e-12) return null;
    for (let r = 0; r < 8; r++) {
      if (r === c) continue;
      const f = A[r][c] / A[c][c];
      for (let k = c; k < 9; k++) A[r][k] -= f * A[c][k];
    }
  }
  const h = A.map((row, i) => row[8] / row[i]);
  return (x, y) => {
    const z = h[6] * x + h[7] * y + 1;
    return [(h[0] * x + h[1] * y + h[2]) / z, (h[3] * x + h[4] * y + h[5]) / z];
  };
}

// Where the bottom-right alignment pattern may really be, searched around its affine
// prediction: the pixels whose surroundings best match dark centre / light ring / dark ring.
function findAlignment(bin, w, h, px, py, ux, uy, radius) {
  const at = (x, y) => {
    const X = Math.round(x);
    const Y = Math.round(y);
    return X >= 0 && Y >= 0 && X < w && Y < h ? bin[Y * w + X] : -1;
  };
  const pts = [];
  for (let dy = -2; dy <= 2; dy++) {
    for (let dx = -2; dx <= 2; dx++) {
      const ring = Math.max(Math.abs(dx), Math.abs(dy));
      pts.push([dx, dy, ring === 1 ? 0 : 1]);
    }
  }
  const step = Math.max(1, Math.hypot(ux.x, ux.y) / 3);
  const found = [];
  for (let oy = -radius; oy <= radius; oy += step) {
    for (let ox = -radius; ox <= radius; ox += step) {
      const cx = px + ox;
      const cy = py + oy;
      let score = 0;
      for (const [dx, dy, want] of pts) {
        if (at(cx + ux.x * dx + uy.x * dy, cy + ux.y * dx + uy.y * dy) === want) score++;
      }
      if (score >= 21) found.push([score, -Math.hypot(ox, oy), cx, cy]);
    }
  }
  // Best matches first (nearest the prediction among equals), one per spot; a few are tried.
  found.sort((a, b) => b[0] - a[0] || b[1] - a[1]);
  const unit = Math.hypot(ux.x, ux.y);
  const spots = [];
  for (const [, , x, y] of found) {
    if (spots.every(([sx, sy]) => Math.hypot(sx - x, sy - y) > 2 * unit)) spots.push([x, y]);
    if (spots.length === 5) break;
  }
  return spots;
}

function tryTriple(bin, w, h, [tl, tr, bl]) {
  const module = (tl.size + tr.size + bl.size) / 21;
  const across = (Math.hypot(tr.x - tl.x, tr.y - tl.y) + Math.hypot(bl.x - tl.x, bl.y - tl.y))
    / 2 / module;
  // Finder sizes are rough under perspective: every version, nearest the estimate first.
  const estimate = (across + 7 - 17) / 4;
  const versions = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    .sort((a, b) => Math.abs(a - estimate) - Math.abs(b - estimate));
  for (const version of versions) {
    const dim = 17 + 4 * version;
    const span = dim - 7;
    const ux = { x: (tr.x - tl.x) / span, y: (tr.y - tl.y) / span };
    const uy = { x: (bl.x - tl.x) / span, y: (bl.y - tl.y) / span };
    const maps = [];
    if (version >= 2) {
      // Perspective: the fourth point is the bottom-right alignment pattern.
      const a = dim - 6.5 - 3.5;
      const spots = findAlignment(bin, w, h, tl.x + (ux.x + uy.x) * a,
        tl.y + (ux.y + uy.y) * a, ux, uy, Math.max(6, dim / 4) * Math.hypot(ux.x, ux.y));
      for (const ap of spots) {
        const H = homography([[3.5, 3.5], [dim - 3.5, 3.5], [3.5, dim - 3.5],
          [dim - 6.5, dim - 6.5]], [[tl.x, tl.y], [tr.x, tr.y], [bl.x, bl.y], ap]);
        if (H) maps.push(H);
      }
    }
    maps.push((x, y) => [tl.x + ux.x * (x - 3.5) + uy.x * (y - 3.5),
      tl.y + ux.y * (x - 3.5) + uy.y * (y - 3.5)]);
    for (const map of maps) {
      const get = (r, c) => {
        const [x, y] = map(c + 0.5, r + 0.5);
        const X = Math.round(x);
        const Y = Math.round(y);
        return X >= 0 && Y >= 0 && X < w && Y < h ? bin[Y * w + X] : 0;
      };
      const text = decodeMatrix(get, dim);
      if (text !== null) return text;
    }
  }
  return null;
}
