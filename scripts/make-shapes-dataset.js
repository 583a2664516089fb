#!/usr/bin/env node
// Writes the small captioned image folders the text-to-image recipes and tests use
// (recipes/data/shapes/{train,test}: 64×64 PNGs + metadata.jsonl; recipes/data/shapes-mixed/train: the same
// kind of shapes on wide, tall and square canvases, for aspect-ratio buckets). Deterministic; rerun to regenerate.
'use strict';
const fs = require('fs');
const path = require('path');
const sharp = require('sharp');

const COLORS = { red: '#d62728', green: '#2ca02c', blue: '#1f77b4', orange: '#ff7f0e', purple: '#9467bd', black: '#222222' };
const SHAPES = {
  circle: (c) => `<circle cx="32" cy="32" r="20" fill="${c}"/>`,
  square: (c) => `<rect x="13" y="13" width="38" height="38" fill="${c}"/>`,
  triangle: (c) => `<polygon points="32,10 54,52 10,52" fill="${c}"/>`,
};

async function write(dir, items) {
  fs.mkdirSync(dir, { recursive: true });
  const lines = [];
  for (const [color, shape] of items) {
    const file = `${color}-${shape}.png`;
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64" fill="#f4f1e8"/>${SHAPES[shape](COLORS[color])}</svg>`;
    await sharp(Buffer.from(svg)).png().toFile(path.join(dir, file));
    lines.push(JSON.stringify({ file_name: file, text: `a ${color} ${shape}, flat style` }));
  }
  fs.writeFileSync(path.join(dir, 'metadata.jsonl'), lines.join('\n') + '\n');
}

/** A shape centred on a width × height canvas, sized by its shorter side. */
const PLACED = {
  circle: (c, w, h) => `<circle cx="${w / 2}" cy="${h / 2}" r="${Math.min(w, h) * 0.3}" fill="${c}"/>`,
  square: (c, w, h) => {
    const s = Math.min(w, h) * 0.6;
    return `<rect x="${(w - s) / 2}" y="${(h - s) / 2}" width="${s}" height="${s}" fill="${c}"/>`;
  },
  triangle: (c, w, h) => {
    const s = Math.min(w, h) * 0.35;
    return `<polygon points="${w / 2},${h / 2 - s} ${w / 2 + s},${h / 2 + s * 0.9} ${w / 2 - s},${h / 2 + s * 0.9}" fill="${c}"/>`;
  },
};
const CANVASES = { wide: [96, 48], tall: [48, 96], square: [64, 64] };

async function writeMixed(dir) {
  fs.mkdirSync(dir, { recursive: true });
  const lines = [];
  const shapes = Object.keys(PLACED);
  for (const [ci, color] of ['red', 'green', 'blue', 'orange'].entries())
    for (const [vi, [canvas, [w, h]]] of Object.entries(CANVASES).entries()) {
      const shape = shapes[(ci + vi) % shapes.length];
      const file = `${color}-${shape}-${canvas}.png`;
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}"><rect width="${w}" height="${h}" fill="#f4f1e8"/>${PLACED[shape](COLORS[color], w, h)}</svg>`;
      await sharp(Buffer.from(svg)).png().toFile(path.join(dir, file));
      lines.push(JSON.stringify({ file_name: file, text: `a ${color} ${shape}, flat style, ${canvas}` }));
    }
  fs.writeFileSync(path.join(dir, 'metadata.jsonl'), lines.join('\n') + '\n');
  return lines.length;
}

async function main() {
  const root = path.resolve(process.argv[2] ?? path.join(__dirname, '..', 'recipes', 'data', 'shapes'));
  const train = [];
  for (const color of ['red', 'green', 'blue', 'orange']) for (const shape of Object.keys(SHAPES)) train.push([color, shape]);
  await write(path.join(root, 'train'), train);
  await write(path.join(root, 'test'), [
    ['purple', 'circle'],
    ['purple', 'square'],
    ['black', 'triangle'],
    ['black', 'circle'],
  ]);
  const mixed = await writeMixed(path.join(root, '..', 'shapes-mixed', 'train'));
  console.log(
    `wrote ${train.length} training and 4 held-out images under ${root}, ${mixed} wide, tall and square ones under ${path.join(root, '..', 'shapes-mixed')}`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
